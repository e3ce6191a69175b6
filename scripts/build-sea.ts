// npm run build:sea: the sidecar as one self-contained executable, dist/agent-sidecar-linux-x64:
// Node.js 24 (the pinned `node` dev dependency's binary) with the CLI bundled into it as a
// Node.js single executable application. It runs every subcommand with no node_modules
// beside it and whatever Node.js the machine has, or none.
//
// 1. scripts/bundle.ts bundles the CLI into one CommonJS file, as for bin/agent-sidecar.js (a
//    single executable's main script is CommonJS in Node.js 24);
// 2. node --experimental-sea-config writes the preparation blob (with V8's code cache, and
//    the launcher's V8 flags as the executable's own execArgv);
// 3. postject copies the blob into a copy of the node binary.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIDECAR_V8_FLAGS } from '../src/cli/launch.ts';
import { BUNDLE, bundleCli, WORKER_BUNDLE } from './bundle.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const OUT_DIR = join(REPO, 'dist');
const WORK = join(OUT_DIR, 'sea');
export const SEA_EXECUTABLE = join(OUT_DIR, `agent-sidecar-${process.platform}-${process.arch}`);
// The sentinel Node.js looks for to know that a blob was injected (its documentation names it).
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const started = Date.now();
const say = (line: string) => process.stdout.write(`build:sea: ${line}\n`);

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
// The bundle bin/agent-sidecar.js runs too: written again here, so both run the same sources.
const bundle = BUNDLE;
const inputs = await bundleCli(bundle);
say(`bundled ${inputs} modules into ${bundle} (${mb(statSync(bundle).size)})`);

const blob = join(WORK, 'agent-sidecar.blob');
const seaConfig = join(WORK, 'sea-config.json');
writeFileSync(
  seaConfig,
  JSON.stringify(
    {
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: true,
      execArgv: SIDECAR_V8_FLAGS,
      execArgvExtension: 'env',
      // The OTLP relay's worker thread runs this code (src/telemetry/relay/thread.ts).
      assets: { [basename(WORKER_BUNDLE)]: WORKER_BUNDLE },
    },
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
