#!/usr/bin/env node
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`agent-sidecar needs Node.js 24 or newer; this is ${process.version}.\n`);
  process.exit(1);
}

// The long-running sidecar (`run`) caps V8's young generation. Left to itself, V8 sizes it
// from the machine's memory and grows it under load. Measured with npm run bench on a 2-CPU,
// 24 GB machine, default -> 8 MB semi-spaces:
//   RSS at 1000 req/s: passthrough 145-148 -> 132-134 MB, full chain 247-249 -> 157-167 MB;
//   RSS under saturation: passthrough 261-262 -> 163 MB, full chain 492 -> 372-400 MB;
//   requests/s within the spread of runs (JWT + RBAC: 31.1-32.0k -> 31.0-32.5k).
// 4 MB saved another 10 MB at 1000 req/s but cost the JWT path 12% of its requests/s
// (27.1-28.4k), 16 MB kept 15 MB more.
// V8 reads the flag only at start, so the process replaces itself once (same pid, same
// descriptors) with the flag in place: preloads (--import, --require) then run twice, and a
// parent that forked it with an IPC channel loses that channel. A --max-semi-space-size of your
// own (on the command line or in NODE_OPTIONS) wins, and AGENT_SIDECAR_NODE_FLAGS=none turns
// this off. Where the process cannot be replaced (Windows, a permission model that forbids it)
// the sidecar runs with V8's default.
//
// The same replacement sets MALLOC_ARENA_MAX=2 unless it is set: glibc otherwise keeps up to
// eight malloc arenas per CPU for the process's threads (V8's, libuv's), each holding freed
// memory. Measured with npm run bench -- --scenario auth, 16 -> 2 arenas, two runs each:
//   RSS at 1000 req/s: passthrough 136-138 -> 127-130 MB, JWT + RBAC 137-144 -> 130-133 MB;
//   RSS under saturation: 170-186 -> 153-169 MB; JWT + RBAC requests/s 26.6-27.5k -> 28.8k.
// musl ignores it.
// glibc reads it once, at start: the replaced process removes it from its environment again,
// so that an agent started by `run -- <command>` or any other child keeps its allocator's default.
const YOUNG_GENERATION = '--max-semi-space-size=8';
const first = process.argv[2];
// `run` is the default command: `agent-sidecar`, `agent-sidecar --upstream …` run it too.
const isRun = first === 'run' || first === undefined || (first.startsWith('-') && !['-h', '--help', '-v', '--version'].includes(first));
const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.replaceAll('_', '-').startsWith('--max-semi-space-size'));
const ARENAS_SET = 'AGENT_SIDECAR_MALLOC_ARENA_MAX_SET';
const arenas = process.env.MALLOC_ARENA_MAX === undefined;
if (isRun && (!own || arenas) && process.env.AGENT_SIDECAR_NODE_FLAGS !== 'none' && process.platform !== 'win32' && typeof process.execve === 'function') {
  try {
    const flags = own ? process.execArgv : [YOUNG_GENERATION, ...process.execArgv];
    const env = arenas ? { ...process.env, MALLOC_ARENA_MAX: '2', [ARENAS_SET]: '1' } : process.env;
    process.execve(process.execPath, [process.execPath, ...flags, ...process.argv.slice(1)], env);
  } catch {
    // Not replaced: this process goes on as it is.
  }
}
if (process.env[ARENAS_SET] === '1') {
  delete process.env.MALLOC_ARENA_MAX;
  delete process.env[ARENAS_SET];
}
await import('../dist/cli/main.js');
