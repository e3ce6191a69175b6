import { isSea } from 'node:sea';

// How `run` starts Node.js: the package's bin (bin/agent-sidecar.js) and the single
// executable (dist/agent-sidecar-linux-x64) both call relaunch() before anything else loads.
//
// The long-running sidecar (`run`) caps V8's young generation. Left to itself, V8 sizes it
// from the machine's memory and grows it under load: 8 MB semi-spaces keep the resident set
// down at no measured cost in requests/s; 4 MB cost the JWT path requests/s, 16 MB kept more
// memory. Each of the three settings here is measured by `npm run bench` against
// `npm run bench -- --node-flags none` (bench/README.md, Measured decisions, has the figures).
// V8 reads the flag only at start, so the process replaces itself once (same pid, same
// descriptors) with the flag in place: preloads (--import, --require) then run twice, and a
// parent that forked it with an IPC channel loses that channel. A --max-semi-space-size of your
// own (on the command line or in NODE_OPTIONS) wins, and AGENT_SIDECAR_NODE_FLAGS=none turns
// this and what follows off. Where the process cannot be replaced (Windows, a permission model
// that forbids it) the sidecar runs with V8's default.
//
// The same replacement sets MALLOC_ARENA_MAX=2 unless it is set: glibc otherwise keeps up to
// eight malloc arenas per CPU for the process's threads (V8's, libuv's), each holding freed
// memory. musl ignores it.
// glibc reads it once, at start: the replaced process removes it from its environment again,
// so that an agent started by `run -- <command>` or any other child keeps its allocator's default.
//
// And V8's allocation-site pretenuring is off. With request bodies, V8 decided to allocate
// per-request objects straight in the old generation, where they die: every scavenge then
// scanned them; off, bodies cost less GC, memory and tail latency, and GET requests are
// unchanged (--scenario protect against --node-flags none).
//
// The single executable carries the V8 flags in its own execArgv (scripts/build-sea.ts), since
// flags on its command line are the application's arguments; it replaces itself only for the
// allocator's variable.

/** V8 flags of `run`, each left out when the user gives the same flag (either spelling, or its --no- form). */
export const SIDECAR_V8_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--no-allocation-site-pretenuring'];
const ARENAS_SET = 'AGENT_SIDECAR_MALLOC_ARENA_MAX_SET';

/** `run` is the default command: `agent-sidecar`, `agent-sidecar --upstream …` run it too. */
export function isRunCommand(args: readonly string[]): boolean {
  const first = args[0];
  return first === 'run' || first === undefined || (first.startsWith('-') && !['-h', '--help', '-v', '--version'].includes(first));
}

/**
 * Replaces the process once with the settings above when it runs the sidecar and they are
 * not in place yet; otherwise returns, after removing the allocator's variable that an
 * earlier replacement set from the environment children inherit.
 */
export function relaunch(): void {
  const args = process.argv.slice(2);
  const sea = isSea();
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => flagName(a));
  const flags = sea ? [] : SIDECAR_V8_FLAGS.filter((f) => !given.includes(flagName(f)));
  const arenas = process.env.MALLOC_ARENA_MAX === undefined;
  if (
    isRunCommand(args) &&
    (flags.length > 0 || arenas) &&
    process.env.AGENT_SIDECAR_NODE_FLAGS !== 'none' &&
    process.platform !== 'win32' &&
    typeof process.execve === 'function'
  ) {
    try {
      const env = arenas ? { ...process.env, MALLOC_ARENA_MAX: '2', [ARENAS_SET]: '1' } : process.env;
      // A single executable's argv[1] is the executable again; its node flags live in the blob.
      const argv = sea ? [process.execPath, ...args] : [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)];
      process.execve(process.execPath, argv, env);
    } catch {
      // Not replaced: this process goes on as it is.
    }
  }
  if (process.env[ARENAS_SET] === '1') {
    delete process.env.MALLOC_ARENA_MAX;
    delete process.env[ARENAS_SET];
  }
}

/** `--max_semi_space_size=16`, `--no-max-semi-space-size` -> `max-semi-space-size`. */
function flagName(arg: string): string {
  return arg
    .replace(/=.*$/, '')
    .replaceAll('_', '-')
    .replace(/^--(no-)?/, '');
}
