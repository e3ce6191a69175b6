/**
 * npm test's first step (scripts/preflight.ts) on a machine without the programs the tests
 * use: one line naming each, one with the command that installs them, exit 1, and nothing
 * else run. --no-install keeps it from installing them on a machine where it could.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const PREFLIGHT = fileURLToPath(new URL('../scripts/preflight.ts', import.meta.url));
const empty = mkdtempSync(join(tmpdir(), 'agent-sidecar-preflight-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

function preflight(args: string[], path: string) {
  const r = spawnSync(process.execPath, [PREFLIGHT, ...args], { env: { PATH: path, HOME: empty }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, lines: r.stdout.trimEnd().split('\n'), stderr: r.stderr };
}

describe('scripts/preflight.ts', () => {
  it('with a PATH that has none of the programs: one line of what is missing, one of how to install it, exit 1', () => {
    const r = preflight(['--no-install'], empty);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('');
    expect(r.lines).toHaveLength(2);
    const [missing, fix] = r.lines as [string, string];
    expect(missing).toMatch(
      /^preflight: missing redis-server \(.+\), redis-cli \(.+\), promtool \(.+\), amtool \(.+\), prometheus \(.+\), unzip \(.+\), mvn \(.+\)/,
    );
    expect(missing).toMatch(/no test was run$/);
    expect(fix).toBe(
      'preflight: to fix: apt-get update && apt-get install -y redis-server redis-tools prometheus prometheus-alertmanager unzip maven python3-venv',
    );
  });

  it('--unit asks only for what the unit tests use', () => {
    const r = preflight(['--unit', '--no-install'], empty);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(
      /^preflight: missing redis-server \([^)]+\), redis-cli \([^)]+\), promtool \([^)]+\), amtool \([^)]+\), python3 \([^)]+\); no test was run$/,
    );
  });

  it('passes where the programs are (this machine runs the tests, so it has them)', () => {
    const r = preflight(['--unit', '--no-install'], process.env.PATH ?? '');
    expect(r.status, r.lines.join('\n')).toBe(0);
    expect(r.lines).toEqual([expect.stringMatching(/^preflight: all there: redis-server, redis-cli, promtool, amtool, python3; node v24\./)]);
  });
});
