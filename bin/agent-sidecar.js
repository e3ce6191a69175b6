#!/usr/bin/env node
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`agent-sidecar needs Node.js 24 or newer; this is ${process.version}.\n`);
  process.exit(1);
}
// `run` replaces the process once with its V8 and allocator settings (src/cli/launch.ts says which and why).
const { relaunch } = await import('../dist/cli/launch.js');
relaunch();
await import('../dist/cli/main.js');
