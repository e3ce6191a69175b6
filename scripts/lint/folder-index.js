// ESLint rule: an import that leaves its feature folder (src/<folder>/) goes through the other
// folder's index.ts, its public face, so a folder can rearrange its files without its users
// noticing. Imports within a folder, and imports of src/ root files (sidecar.ts, version.ts),
// are not concerned.
import path from 'node:path';

/** The feature folder of a file under src/, or undefined for a root file or a file outside src/. */
function folderOf(file, srcDir) {
  const rel = path.relative(srcDir, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] : undefined;
}

/** @type {import('eslint').Rule.RuleModule} */
export const folderIndex = {
  meta: {
    type: 'suggestion',
    docs: { description: "imports from another src/ folder go through that folder's index.ts" },
    schema: [],
    messages: { throughIndex: "import '{{folder}}' through its index.ts ({{suggested}}), not {{source}}" },
  },
  create(context) {
    const file = context.filename;
    const srcDir = path.resolve(context.cwd, 'src');
    const own = folderOf(file, srcDir);
    const inSrc = !path.relative(srcDir, file).startsWith('..');
    if (!inSrc) return {};
    function check(node) {
      const source = node.source?.value;
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), source);
      const folder = folderOf(target, srcDir);
      if (folder === undefined || folder === own) return;
      if (target === path.join(srcDir, folder, 'index.ts')) return;
      const suggested = path.relative(path.dirname(file), path.join(srcDir, folder, 'index.ts'));
      context.report({
        node: node.source,
        messageId: 'throughIndex',
        data: { folder, source, suggested: suggested.startsWith('.') ? suggested : `./${suggested}` },
      });
    }
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check };
  },
};
