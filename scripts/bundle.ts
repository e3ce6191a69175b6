// The CLI as one CommonJS file: esbuild bundles src/cli/entry.ts and everything it imports.
// npm run build writes dist/agent-sidecar.cjs, which bin/agent-sidecar.js runs, and the single
// executable (scripts/build-sea.ts) carries the same bundle. One file instead of some 1,100
// modules of dist/ and node_modules: `npm run bench:executable` measures both; the bundle
// started with 18 MB less resident memory, 12 MB of it anonymous (bench/README.md, Measured decisions).
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = fileURLToPath(new URL('../', import.meta.url));
export const BUNDLE = join(REPO, 'dist', 'agent-sidecar.cjs');
/** The OTLP relay's worker thread, bundled apart: the CLI bundle starts it from beside itself (src/relay-thread.ts). */
export const WORKER_BUNDLE = join(REPO, 'dist', 'relay-worker.cjs');

/** Bundles the CLI into `outfile` and the relay's worker beside it; returns how many modules went into the CLI. */
export async function bundleCli(outfile: string = BUNDLE): Promise<number> {
  const inputs = await bundle(join(REPO, 'src/cli/entry.ts'), outfile);
  await bundle(join(REPO, 'src/relay-thread.ts'), join(dirname(outfile), 'relay-worker.cjs'));
  return inputs;
}

async function bundle(entry: string, outfile: string): Promise<number> {
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  const result = await build({
    entryPoints: [entry],
    outfile,
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
  return Object.keys(result.metafile.inputs).length;
}

if (import.meta.main) {
  const started = Date.now();
  const inputs = await bundleCli();
  process.stdout.write(
    `bundle: ${inputs} modules into ${BUNDLE} (${(statSync(BUNDLE).size / 2 ** 20).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}
