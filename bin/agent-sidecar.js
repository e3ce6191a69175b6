#!/usr/bin/env node
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`agent-sidecar needs Node.js 24 or newer; this is ${process.version}.\n`);
  process.exit(1);
}
// The bundled CLI (npm run build writes it; scripts/bundle.ts says why one file): it runs the
// launcher, then the CLI. `run` replaces the process once with its V8 and allocator settings
// (src/cli/launch.ts says which and why).
await import('../dist/agent-sidecar.cjs');
