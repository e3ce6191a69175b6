import { parseDocument } from 'yaml';

/**
 * Nesting deeper than this is refused. The deepest real document the sidecar reads (a
 * configuration's protection rules, a policy's route methods) nests about 6 levels.
 */
export const MAX_YAML_DEPTH = 64;
/** yaml's guard against alias bombs ("billion laughs"): alias uses, weighted by what they copy. */
export const MAX_YAML_ALIAS_COUNT = 100;

/** Why a document was refused: one line per problem, without the document's text. */
export class YamlError extends Error {
  override readonly name = 'YamlError';
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('; '));
    this.problems = problems;
  }
}

/**
 * Parses one YAML document into plain values, safely: duplicate keys are errors, aliases
 * are bounded (an alias bomb is refused, never expanded), a document that refers to itself
 * (`a: &a [*a]`) is refused, and so is nesting deeper than `maxDepth`. Every failure is a
 * YamlError; no input makes it throw anything else or overflow the stack.
 */
export function parseYaml(text: string, options: { maxDepth?: number; prettyErrors?: boolean } = {}): unknown {
  const maxDepth = options.maxDepth ?? MAX_YAML_DEPTH;
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { prettyErrors: options.prettyErrors ?? true, uniqueKeys: true });
  } catch (err) {
    throw new YamlError([isExhaustion(err) ? tooDeep(maxDepth) : `cannot be parsed: ${(err as Error).message}`]);
  }
  if (doc.errors.length > 0) {
    if (doc.errors.some((e) => e.code === 'RESOURCE_EXHAUSTION' || isExhaustion(e))) throw new YamlError([tooDeep(maxDepth)]);
    throw new YamlError(doc.errors.map((e) => e.message));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (err) {
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      throw new YamlError([`its aliases (*name) would copy too much: at most ${MAX_YAML_ALIAS_COUNT} alias uses, weighted by their size, are allowed`]);
    }
    throw new YamlError([isExhaustion(err) ? tooDeep(maxDepth) : `cannot be read: ${(err as Error).message}`]);
  }
  checkShape(value, maxDepth);
  return value;
}

const tooDeep = (maxDepth: number) => `nests deeper than the ${maxDepth} levels allowed`;

function isExhaustion(err: unknown): boolean {
  return err instanceof RangeError || /call stack|stack overflow/i.test((err as Error | undefined)?.message ?? '');
}

/** Depth and cycles, without recursion: an alias to an enclosing node makes a cycle. */
function checkShape(root: unknown, maxDepth: number): void {
  const onPath = new Set<object>();
  const stack: Array<{ node: object; depth: number; children: unknown[]; next: number }> = [];
  const enter = (node: unknown, depth: number) => {
    if (node === null || typeof node !== 'object') return;
    if (onPath.has(node)) throw new YamlError(['an alias (*name) refers to a node that contains it: the document would be infinite']);
    if (depth > maxDepth) throw new YamlError([tooDeep(maxDepth)]);
    onPath.add(node);
    const children = node instanceof Map ? [...node.keys(), ...node.values()] : node instanceof Set ? [...node] : Object.values(node);
    stack.push({ node, depth, children, next: 0 });
  };
  enter(root, 1);
  while (stack.length > 0) {
    const top = stack.at(-1)!;
    if (top.next < top.children.length) {
      enter(top.children[top.next++], top.depth + 1);
    } else {
      onPath.delete(top.node);
      stack.pop();
    }
  }
}
