// npm run stack:build: builds or downloads the full-stack test's programs into the cache
// (see scripts/stack/cache.ts for where), only what is missing, and prints where they are.
import { ensureStack } from './build.ts';

const started = Date.now();
const log = (line: string) => process.stdout.write(`stack: ${line}\n`);
try {
  const stack = await ensureStack(log);
  log(`cache ${stack.paths.root} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  log(`collector      ${stack.collector}`);
  log(`jaeger         ${stack.jaeger}`);
  log(`elasticsearch  ${stack.elasticsearchHome} (java ${stack.java})`);
  log(`prometheus     ${stack.tools.prometheus}; promtool ${stack.tools.promtool}; amtool ${stack.tools.amtool}`);
} catch (err) {
  process.stderr.write(`stack: ${(err as Error).message}\n`);
  process.exit(1);
}
