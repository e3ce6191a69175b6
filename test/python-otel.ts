import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../scripts/stack/cache.ts';

/** test/fixtures/python: the Python agent and what it needs from PyPI. */
export const PYTHON_FIXTURES = fileURLToPath(new URL('./fixtures/python/', import.meta.url));

/**
 * A virtual environment with the Python agent's packages (test/fixtures/python/requirements.txt:
 * Flask, requests, opentelemetry-distro and its instrumentations), installed from PyPI into the
 * cache directory once per requirements file, as the full stack's programs are. Returns its bin
 * directory. Throws with pip's words when it cannot be made (no python3 -m venv, no PyPI).
 */
export function ensurePythonOtel(): string {
  const requirements = join(PYTHON_FIXTURES, 'requirements.txt');
  const key = createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 12);
  const dir = join(cacheDir(), `python-otel-${key}`);
  const bin = join(dir, 'bin');
  if (existsSync(join(bin, 'opentelemetry-instrument'))) return bin;
  rmSync(dir, { recursive: true, force: true });
  const steps: Array<[string, string[]]> = [
    ['python3', ['-m', 'venv', dir]],
    [join(bin, 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', requirements]],
  ];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error)).slice(-2000)}`);
    }
  }
  return bin;
}
