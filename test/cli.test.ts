import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnCli, waitForStartup } from './helpers.ts';

const pkgVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// The overriding variables are blanked so that the test runner's environment cannot leak in.
const CLEAN_ENV: NodeJS.ProcessEnv = { SIDECAR_CONFIG: '', SIDECAR_LISTEN: '', SIDECAR_UPSTREAM: '', SIDECAR_ADMIN: '', SIDECAR_LOG_LEVEL: '' };

/** Runs the CLI to completion: exit status, stdout and stderr apart. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...CLEAN_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

let dir: string;
const running: Array<ReturnType<typeof spawnCli>> = [];

function file(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** A run-able config on free loopback ports, plus extra lines. */
function runnable(name: string, extra: string[] = []): string {
  return file(name, ['listen:', '  address: 127.0.0.1:0', 'admin:', '  address: 127.0.0.1:0', ...extra]);
}

/** Starts `run`, returns the startup log record, then stops the process. */
async function startupRecord(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  const proc = spawnCli(['run', ...args], { ...CLEAN_ENV, ...env });
  running.push(proc);
  await waitForStartup(proc);
  const line = proc
    .output()
    .split('\n')
    .find((l) => l.includes('"event_type":"startup"'))!;
  proc.child.kill('SIGTERM');
  expect(await proc.exited).toBe(0);
  return JSON.parse(line) as Record<string, unknown>;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecar-cli-'));
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('validate', () => {
  it('accepts a valid file and exits 0', async () => {
    const cfg = file('ok.yaml', ['upstream:', '  url: http://127.0.0.1:8000', 'shutdown:', '  gracePeriod: 10s']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid');
    expect(r.stderr).toBe('');
  });

  it('a bad value exits 2, naming the key path and SIDECAR_CONFIG_INVALID', async () => {
    const cfg = file('bad-url.yaml', ['upstream:', '  url: not-a-url']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.url');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });

  it('reports every bad key, each by its path', async () => {
    const cfg = file('two-bad.yaml', ['upstream:', '  connections: 0', 'shutdown:', '  gracePeriod: soon']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.connections');
    expect(r.stderr).toContain('shutdown.gracePeriod');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });

  it('an unknown key exits 2 and names it', async () => {
    const nested = await cli(['validate', '--config', file('unknown-nested.yaml', ['upstream:', '  url: http://127.0.0.1:8000', '  retires: 3'])]);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toContain('upstream.retires');
    expect(nested.stderr).toContain('SIDECAR_CONFIG_INVALID');

    const top = await cli(['validate', '--config', file('unknown-top.yaml', ['listn:', '  address: 127.0.0.1:8080'])]);
    expect(top.code).toBe(2);
    expect(top.stderr).toContain('listn');
    expect(top.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });

  it('invalid YAML exits 2 with SIDECAR_CONFIG_PARSE', async () => {
    const cfg = file('broken.yaml', ['upstream:', '  url: [http://127.0.0.1:8000', '  connections: {']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SIDECAR_CONFIG_PARSE');
  });

  it('a duplicate key is a parse error (SIDECAR_CONFIG_PARSE)', async () => {
    const cfg = file('dup.yaml', ['upstream:', '  url: http://127.0.0.1:8000', 'upstream:', '  url: http://127.0.0.1:9000']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SIDECAR_CONFIG_PARSE');
  });

  it('a missing file exits 2 with SIDECAR_CONFIG_UNREADABLE', async () => {
    const r = await cli(['validate', '--config', join(dir, 'does-not-exist.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SIDECAR_CONFIG_UNREADABLE');
  });

  it('warns about an OTEL_* variable run would ignore, and still exits 0', async () => {
    const cfg = file('otel-env.yaml', ['upstream:', '  url: http://127.0.0.1:8000']);
    const r = await cli(['validate', '--config', cfg], { OTEL_SDK_DISABLED: '', OTEL_BSP_MAX_QUEUE_SIZE: '-1' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'warning: OTEL_BSP_MAX_QUEUE_SIZE="-1": ignored, expected a positive integer; using 2048 (the default) [SIDECAR_OTEL_ENV_INVALID]\n',
    );
    expect(r.stdout).toContain('configuration is valid');
  });

  it('takes the file from SIDECAR_CONFIG', async () => {
    const cfg = file('from-env.yaml', ['upstream:', '  url: nope']);
    const r = await cli(['validate'], { SIDECAR_CONFIG: cfg });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.url');
  });
});

describe('${env:…} substitution', () => {
  it('a whole-value reference to a number becomes a number', async () => {
    const cfg = file('env-number.yaml', ['upstream:', '  connections: ${env:SC_TEST_CONNS}']);
    const ok = await cli(['validate', '--config', cfg], { SC_TEST_CONNS: '16' });
    expect(ok.code).toBe(0);
    // Not a number: the schema sees text and says so at that key.
    const bad = await cli(['validate', '--config', cfg], { SC_TEST_CONNS: 'many' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('upstream.connections');
    expect(bad.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });

  it('a whole-value reference to true/false becomes a boolean', async () => {
    const cfg = file('env-bool.yaml', ['proxy:', '  websockets: ${env:SC_TEST_WS}']);
    expect((await cli(['validate', '--config', cfg], { SC_TEST_WS: 'false' })).code).toBe(0);
  });

  it('substitutes ${env:VAR} and ${env:VAR:-default} into what run uses', async () => {
    const cfg = runnable('env-url.yaml', ['upstream:', '  url: http://${env:SC_TEST_HOST}:${env:SC_TEST_PORT:-7777}']);
    const withDefault = await startupRecord(['--config', cfg], { SC_TEST_HOST: '127.0.0.9' });
    expect(withDefault.upstream).toBe('http://127.0.0.9:7777');

    const withValue = await startupRecord(['--config', cfg], { SC_TEST_HOST: '127.0.0.9', SC_TEST_PORT: '7001' });
    expect(withValue.upstream).toBe('http://127.0.0.9:7001');
  });

  it('a default applies to a whole value too, typed', async () => {
    const cfg = file('env-default-number.yaml', ['upstream:', '  connections: ${env:SC_TEST_UNSET_CONNS:-32}']);
    expect((await cli(['validate', '--config', cfg])).code).toBe(0);
  });

  it('a missing variable without a default exits 2 with SIDECAR_CONFIG_ENV_MISSING and the key path', async () => {
    const cfg = file('env-missing.yaml', ['upstream:', '  url: ${env:SC_TEST_SURELY_UNSET}']);
    const r = await cli(['validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SIDECAR_CONFIG_ENV_MISSING');
    expect(r.stderr).toContain('upstream.url');
    expect(r.stderr).toContain('SC_TEST_SURELY_UNSET');
  });
});

describe('run', () => {
  it('an invalid config exits 2 naming the key, without starting', async () => {
    const cfg = runnable('run-bad.yaml', ['upstream:', '  url: ftp://127.0.0.1:21']);
    const r = await cli(['run', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.url');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
    expect(r.stdout).not.toContain('"event_type":"startup"');
  });

  it('is the default command', async () => {
    const cfg = file('default-cmd-bad.yaml', ['listen:', '  address: nowhere']);
    const r = await cli(['--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('listen.address');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });

  it('SIDECAR_UPSTREAM overrides the file, and --upstream overrides both', async () => {
    const cfg = runnable('override.yaml', ['upstream:', '  url: http://127.0.0.1:7101']);
    expect((await startupRecord(['--config', cfg])).upstream).toBe('http://127.0.0.1:7101');
    expect((await startupRecord(['--config', cfg], { SIDECAR_UPSTREAM: 'http://127.0.0.1:7202' })).upstream).toBe('http://127.0.0.1:7202');
    expect((await startupRecord(['--config', cfg, '--upstream', 'http://127.0.0.1:7303'], { SIDECAR_UPSTREAM: 'http://127.0.0.1:7202' })).upstream).toBe(
      'http://127.0.0.1:7303',
    );
  });

  it('run with a --upstream that is not a URL exits 2 naming upstream.url', async () => {
    const cfg = runnable('run-flag-not-url.yaml');
    const r = await cli(['run', '--config', cfg, '--upstream', 'not-a-url']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.url');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
    expect(r.stdout).not.toContain('"event_type":"startup"');
  });

  it('an invalid --upstream flag is reported at upstream.url', async () => {
    const cfg = runnable('override-bad.yaml');
    const r = await cli(['validate', '--config', cfg, '--upstream', 'http://127.0.0.1:8000/with/path']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream.url');
    expect(r.stderr).toContain('SIDECAR_CONFIG_INVALID');
  });
});

describe('version and help', () => {
  it('version prints the package.json version', async () => {
    const r = await cli(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkgVersion);
  });

  it('--version prints it too', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkgVersion);
  });

  it('run --help and validate --help describe the flags and exit 0', async () => {
    for (const cmd of ['run', 'validate']) {
      const r = await cli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(cmd);
      expect(r.stdout).toContain('--config');
      expect(r.stdout).toContain('--upstream');
      expect(r.stdout).not.toContain('"event_type":"startup"');
    }
  });

  it('--help lists the commands', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['run', 'validate', 'version']) expect(r.stdout).toContain(cmd);
  });
});
