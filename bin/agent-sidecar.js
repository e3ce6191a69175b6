#!/usr/bin/env node
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`agent-sidecar needs Node.js 24 or newer; this is ${process.version}.\n`);
  process.exit(1);
}
await import('../dist/cli/main.js');
