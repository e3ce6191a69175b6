import { isSea } from 'node:sea';

// How `run` starts Node.js: the package's bin (bin/agent-sidecar.js) and the single
// executable (dist/agent-sidecar-linux-x64) both call relaunch() before anything else loads.
//
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
// this and what follows off. Where the process cannot be replaced (Windows, a permission model
// that forbids it) the sidecar runs with V8's default.
//
// The same replacement sets MALLOC_ARENA_MAX=2 unless it is set: glibc otherwise keeps up to
// eight malloc arenas per CPU for the process's threads (V8's, libuv's), each holding freed
// memory. Measured with npm run bench -- --scenario auth, 16 -> 2 arenas, two runs each:
//   RSS at 1000 req/s: passthrough 136-138 -> 127-130 MB, JWT + RBAC 137-144 -> 130-133 MB;
//   RSS under saturation: 170-186 -> 153-169 MB; JWT + RBAC requests/s 26.6-27.5k -> 28.8k.
// musl ignores it.
// glibc reads it once, at start: the replaced process removes it from its environment again,
// so that an agent started by `run -- <command>` or any other child keeps its allocator's default.
//
// And V8's allocation-site pretenuring is off. With request bodies, V8 decided to allocate
// per-request objects straight in the old generation, where they die: every scavenge then
// scanned them. Measured at 1000 req/s with 4 KB JSON POSTs, two runs each, on / off:
//   passthrough: GC 10.9-12.1 -> 1.5-2.0 µs per request, anonymous RSS 176-177 -> 129-132 MB,
//     p99 2.0-2.3 -> 0.7-1.0 ms, 0.172-0.174 -> 0.125-0.159 cores;
//   with traces, metrics and logs: GC 14.2-14.3 -> 5.3-5.5 µs per request, p99 2.7-2.8 ->
//     1.5-1.6 ms, 0.209-0.225 -> 0.178-0.189 cores;
//   GET requests: within the spread of runs (anonymous RSS +6 MB, CPU 0.121-0.131 -> 0.104-0.113).
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
  if (isRunCommand(args) && (flags.length > 0 || arenas) && process.env.AGENT_SIDECAR_NODE_FLAGS !== 'none' && process.platform !== 'win32' && typeof process.execve === 'function') {
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
  return arg.replace(/=.*$/, '').replaceAll('_', '-').replace(/^--(no-)?/, '');
}
