import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Child processes of the benchmark. Each runs in its own process group (detached), so a
 * server's workers go down with it; every one is registered and killed at the end, on
 * error and on SIGINT/SIGTERM.
 */

const OUTPUT_CAP = 256 * 1024;

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  /** stdout and stderr so far (the last 256 KiB of each). */
  stdout(): string;
  stderr(): string;
}

export interface SpawnOptions {
  /** CPU list for taskset, for example "1"; undefined leaves the scheduler free. */
  cpus?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Write stdout to this file instead of keeping it in memory (a server logging a line per request). */
  stdoutFile?: string | undefined;
  /** Sees every chunk of stdout (unless it goes to stdoutFile) and stderr as it arrives (progress of a long build). */
  onOutput?: ((chunk: string) => void) | undefined;
}

const live = new Set<Child>();

export function startChild(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const [cmd, argv] = options.cpus === undefined ? [command, [...args]] : ['taskset', ['-c', options.cpus, command, ...args]];
  const outFd = options.stdoutFile === undefined ? undefined : openSync(options.stdoutFile, 'a');
  const proc = spawn(cmd, argv, {
    detached: true,
    stdio: ['ignore', outFd ?? 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  let out = '';
  let err = '';
  if (outFd !== undefined) {
    closeSync(outFd); // the child has its own copy
    out = `(stdout in ${options.stdoutFile})`;
  } else {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out = cap(out + d);
      options.onOutput?.(d);
    });
  }
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = cap(err + d);
    options.onOutput?.(d);
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.once('error', (e) => {
      err += `\n${name}: ${e.message}`;
      resolve('spawn-error');
    });
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  const child: Child = { name, proc, exited, stdout: () => out, stderr: () => err };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

function cap(s: string): string {
  return s.length > OUTPUT_CAP ? s.slice(-OUTPUT_CAP) : s;
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  const pid = child.proc.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM the process group, then SIGKILL it after graceMs. */
export async function stopChild(child: Child, graceMs = 3000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
    signalGroup(child, 'SIGKILL'); // leftovers of the group, if any
    return;
  }
  signalGroup(child, 'SIGTERM');
  const gone = await Promise.race([child.exited.then(() => true), sleep(graceMs, false)]);
  signalGroup(child, 'SIGKILL');
  if (!gone) await Promise.race([child.exited, sleep(1000)]);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c)));
}

/** Last-resort cleanup: signals, and a synchronous SIGKILL of every group on exit. */
export function installCleanup(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${signal}, stopping child processes\n`);
    void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const c of live) signalGroup(c, 'SIGKILL');
  });
}

export interface ToolResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killing it if it outlives timeoutMs. */
export async function runTool(name: string, command: string, args: readonly string[], timeoutMs: number, options: SpawnOptions = {}): Promise<ToolResult> {
  const child = startChild(name, command, args, options);
  const timer = setTimeout(() => void stopChild(child, 1000), timeoutMs);
  try {
    const code = await child.exited;
    if (code === 'SIGTERM' || code === 'SIGKILL') throw new Error(`${name} did not finish within ${timeoutMs} ms and was killed`);
    return { code, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a command and returns its stdout; throws with its stderr unless it exits 0. */
export async function runChecked(name: string, command: string, args: readonly string[], timeoutMs: number, options: SpawnOptions = {}): Promise<string> {
  const r = await runTool(name, command, args, timeoutMs, options);
  if (r.code !== 0) throw new Error(`${name} exited with ${r.code}:\n${tail(r.stderr || r.stdout)}`);
  return r.stdout;
}

export function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
