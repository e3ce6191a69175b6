import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { cacheDir } from '../../scripts/stack/cache.ts';
import { runChecked, runTool } from './procs.ts';

export const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@latest';
/** Pinned: its flags are part of the peer's configuration. */
export const OAUTH2_PROXY_MODULE = 'github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6';

/** Where installed load tools live: outside the repository, reused across runs. */
export function toolDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'bin');
}

export function executable(path: string): boolean {
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

/** A Go program the bench installs with `go install`: its module@version and the binary it leaves. */
export interface GoTool {
  name: string;
  module: string;
  /** Subdirectory of toolDir() for a pinned version, so another version is installed beside it, not over it. */
  subdir?: string;
  /** Run the build under `nice -n 10` (a large build on a shared machine). */
  nice?: boolean;
  timeoutMs: number;
}

export const VEGETA: GoTool = { name: 'vegeta', module: VEGETA_MODULE, timeoutMs: 300_000 };
export const OAUTH2_PROXY: GoTool = {
  name: 'oauth2-proxy',
  module: OAUTH2_PROXY_MODULE,
  subdir: `oauth2-proxy-${OAUTH2_PROXY_MODULE.split('@')[1]}`,
  nice: true,
  timeoutMs: 900_000,
};

/** Where a Go tool's binary is (or will be) in the cache directory. */
export function goToolPath(tool: GoTool, env: NodeJS.ProcessEnv = process.env): string {
  return join(toolDir(env), ...(tool.subdir ? [tool.subdir] : []), tool.name);
}

/** A Go tool from the cache directory, installed there with `go install` when missing. */
export async function ensureGoTool(tool: GoTool, log: (line: string) => void): Promise<string> {
  const cached = goToolPath(tool);
  if (executable(cached)) return cached;
  const dir = dirname(cached);
  const go = which('go');
  if (go === undefined) throw new Error(`${tool.name} is not installed in ${dir} and go is not on PATH to install it (go install ${tool.module})`);
  mkdirSync(dir, { recursive: true });
  const nice = tool.nice ? which('nice') : undefined;
  const [command, args] = nice ? [nice, ['-n', '10', go, 'install', tool.module]] : [go, ['install', tool.module]];
  log(`installing ${tool.name}: GOBIN=${dir} ${nice ? 'nice -n 10 ' : ''}go install ${tool.module}`);
  await runChecked(`go install ${tool.name}`, command, args, tool.timeoutMs, { env: { ...process.env, GOBIN: dir } });
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
