// npm run build:sea: the sidecar as one self-contained executable, dist/agent-sidecar-linux-x64:
// Node.js 24 (the pinned `node` dev dependency's binary) with the CLI bundled into it as a
// Node.js single executable application. It runs every subcommand with no node_modules
// beside it and whatever Node.js the machine has, or none.
//
// 1. esbuild bundles src/cli/sea.ts and everything it imports into one CommonJS file (a single
//    executable's main script is CommonJS in Node.js 24);
// 2. node --experimental-sea-config writes the preparation blob (with V8's code cache, and
//    the launcher's V8 flags as the executable's own execArgv);
// 3. postject copies the blob into a copy of the node binary.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { SIDECAR_V8_FLAGS } from '../src/cli/launch.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const OUT_DIR = join(REPO, 'dist');
const WORK = join(OUT_DIR, 'sea');
export const SEA_EXECUTABLE = join(OUT_DIR, `agent-sidecar-${process.platform}-${process.arch}`);
// The sentinel Node.js looks for to know that a blob was injected (its documentation names it).
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const started = Date.now();
const say = (line: string) => process.stdout.write(`build:sea: ${line}\n`);
const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const bundle = join(WORK, 'agent-sidecar.cjs');
const result = await build({
  entryPoints: [join(REPO, 'src/cli/sea.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  // Names stay, so that stack traces and error names read as in the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  // src/stores/redis.ts names import.meta.url only on its ESM branch, which a bundle never takes;
  // any other use would break at run time, and the full-stack test of the executable would fail.
  logOverride: { 'empty-import-meta': 'silent' },
  plugins: [
    {
      // Packages are taken in their CommonJS builds (the `require` condition of their exports),
      // as a CommonJS bundle would load them: their ESM builds may reach for modules through
      // createRequire(import.meta.url) at run time, which a bundle cannot follow.
      name: 'commonjs-builds',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, async (args) => {
          if (args.kind !== 'import-statement' && args.kind !== 'dynamic-import') return undefined;
          if (args.path.startsWith('node:')) return undefined;
          const r = await b.resolve(args.path, { kind: 'require-call', resolveDir: args.resolveDir, importer: args.importer });
          return r.errors.length > 0 ? undefined : r;
        });
      },
    },
    {
      // src/version.ts reads package.json next to the sources at run time; the executable has
      // no such file, so the version is written into the bundle.
      name: 'version',
      setup(b) {
        b.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, () => ({ contents: `export const version = ${JSON.stringify(version)};`, loader: 'ts' }));
      },
    },
  ],
});
const inputs = Object.keys(result.metafile.inputs).length;
say(`bundled ${inputs} modules into ${bundle} (${mb(statSync(bundle).size)})`);

const blob = join(WORK, 'agent-sidecar.blob');
const seaConfig = join(WORK, 'sea-config.json');
writeFileSync(
  seaConfig,
  JSON.stringify(
    { main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: SIDECAR_V8_FLAGS, execArgvExtension: 'env' },
    null,
    2,
  ),
);
const node = realpathSync(process.execPath);
// With the executable's own V8 flags, or V8 rejects the code cache at every start.
execFileSync(node, [...SIDECAR_V8_FLAGS, '--experimental-sea-config', seaConfig], { stdio: 'inherit' });

rmSync(SEA_EXECUTABLE, { force: true });
copyFileSync(node, SEA_EXECUTABLE);
chmodSync(SEA_EXECUTABLE, 0o755);
const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
// postject's ELF writer warns about note sections it does not name; its output is shown only when it fails.
try {
  execFileSync(node, [postject, SEA_EXECUTABLE, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], { stdio: 'pipe' });
} catch (err) {
  const e = err as { stdout?: Buffer; stderr?: Buffer };
  process.stderr.write(`${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  throw new Error('postject could not write the blob into the executable', { cause: err });
}
say(`wrote ${SEA_EXECUTABLE} (${mb(statSync(SEA_EXECUTABLE).size)}, Node.js ${process.version}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}
