import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { runChecked, runTool } from './procs.ts';

export const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@latest';

/** Where installed load tools live: outside the repository, reused across runs. */
export function toolDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'agent-sidecar', 'bin');
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable called name on PATH (or in extra directories), if any. */
export function which(name: string, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(delimiter), '/usr/local/go/bin', '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (executable(p)) return p;
  }
  return undefined;
}

export function requireTool(name: string, hint: string): string {
  const p = which(name);
  if (p === undefined) throw new Error(`${name} not found on PATH; ${hint}`);
  return p;
}

/** vegeta from the cache directory, installed there with `go install` when missing. */
export async function ensureVegeta(log: (line: string) => void): Promise<string> {
  const dir = toolDir();
  const cached = join(dir, 'vegeta');
  if (executable(cached)) return cached;
  const go = which('go');
  if (go === undefined) throw new Error(`vegeta is not installed in ${dir} and go is not on PATH to install it (go install ${VEGETA_MODULE})`);
  mkdirSync(dir, { recursive: true });
  log(`installing vegeta: GOBIN=${dir} go install ${VEGETA_MODULE}`);
  await runChecked('go install vegeta', go, ['install', VEGETA_MODULE], 300_000, { env: { ...process.env, GOBIN: dir } });
  if (!executable(cached)) throw new Error(`go install finished but ${cached} is missing`);
  return cached;
}

/** A tool's version line, for the results file; never fails. */
export async function versionOf(command: string, args: readonly string[]): Promise<string> {
  try {
    const r = await runTool(`${command} version`, command, args, 10_000);
    return (r.stdout + r.stderr).trim().split('\n')[0] ?? '';
  } catch {
    return 'unknown';
  }
}
