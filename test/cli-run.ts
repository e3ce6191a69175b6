import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'vitest';
import { CLI } from './helpers.ts';

// The overriding variables are blanked so that the test runner's environment cannot leak in;
// the egress listener takes a free port (its default is one port for every test file).
export const CLEAN_ENV: NodeJS.ProcessEnv = {
  SIDECAR_CONFIG: '',
  SIDECAR_LISTEN: '',
  SIDECAR_UPSTREAM: '',
  SIDECAR_ADMIN: '',
  SIDECAR_LOG_LEVEL: '',
  SIDECAR_EGRESS: '127.0.0.1:0',
  AGENT_SIDECAR_DEBUG: '',
};

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Killed after `timeoutMs`: the command hung. */
  killed: boolean;
  ms: number;
}

/** Runs the CLI to completion as a child process: exit status, stdout and stderr apart. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, options: { timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<CliResult> {
  const started = Date.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], {
    env: { ...process.env, ...CLEAN_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 15_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr, killed, ms: Date.now() - started };
}

/** A JavaScript stack frame, as Node.js prints them. */
export const STACK_FRAME = /^\s+at /m;

/**
 * The promise of every failure: the exit status, the stable code on stderr, one line per
 * problem and no stack trace, and no hang.
 */
export function expectFailure(r: CliResult, code: string, status = 2): void {
  const context = `exit ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`;
  expect(r.killed, context).toBe(false);
  expect(r.code, context).toBe(status);
  expect(r.stderr, context).toContain(`[${code}]`);
  expect(r.stderr, context).toMatch(/^agent-sidecar: /);
  expect(r.stderr, context).not.toMatch(STACK_FRAME);
  expect(r.stdout, context).not.toMatch(STACK_FRAME);
}
