import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIDECAR_V8_FLAGS } from '../bench/lib/servers.ts';

// bin/agent-sidecar.js as users and the image start it: `run` replaces itself once with the
// young-generation cap; the command line of the running pid shows what V8 got. The launcher
// runs the bundled build (dist/agent-sidecar.cjs, which npm ci and npm run build make).
const BIN = fileURLToPath(new URL('../bin/agent-sidecar.js', import.meta.url));
const BUILT = existsSync(fileURLToPath(new URL('../dist/agent-sidecar.cjs', import.meta.url)));
const CLEAN_ENV: NodeJS.ProcessEnv = {
  SIDECAR_CONFIG: '',
  SIDECAR_LISTEN: '',
  SIDECAR_UPSTREAM: '',
  SIDECAR_ADMIN: '',
  SIDECAR_LOG_LEVEL: '',
  SIDECAR_EGRESS: '127.0.0.1:0',
  NODE_OPTIONS: '',
  MALLOC_ARENA_MAX: undefined,
};

let dir: string;
let config: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecar-launcher-'));
  config = join(dir, 'sidecar.yaml');
  writeFileSync(config, 'listen:\n  address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\ntelemetry:\n  enabled: false\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the launcher, waits for the startup line, and returns the running pid's node arguments. */
async function nodeArgsOfRun(env: NodeJS.ProcessEnv, extraNodeArgs: string[] = [], command: string[] = ['run']): Promise<string[]> {
  return (await launch(env, extraNodeArgs, command)).args;
}

/**
 * The launcher's running pid: its node arguments, the environment it was (re)started with,
 * and what the sidecar printed once `until` appeared.
 */
async function launch(
  env: NodeJS.ProcessEnv,
  extraNodeArgs: string[] = [],
  command: string[] = ['run'],
  until = '"event_type":"startup"',
  tail: string[] = [],
) {
  const child = spawn(process.execPath, [...extraNodeArgs, BIN, ...command, '--config', config, ...tail], {
    env: { ...process.env, ...CLEAN_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const deadline = Date.now() + 15_000;
    while (!out.includes(until)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the sidecar did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0').filter(Boolean);
    return { args: argv.slice(1, argv.indexOf(BIN)), environ, out };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'close');
  }
}

describe.runIf(process.platform === 'linux' && BUILT)('bin/agent-sidecar.js run', () => {
  it('runs the sidecar with the young generation capped, in the same process, keeping node flags of its own', async () => {
    expect(await nodeArgsOfRun({}, ['--stack-size=2000'])).toEqual([...SIDECAR_V8_FLAGS, '--stack-size=2000']);
  });

  it('does the same for run as the default command (agent-sidecar --config …)', async () => {
    expect(await nodeArgsOfRun({}, [], [])).toEqual(SIDECAR_V8_FLAGS);
  });

  it('leaves a flag the user gives (command line or NODE_OPTIONS, either spelling, --no- form) alone, and AGENT_SIDECAR_NODE_FLAGS=none turns them off', async () => {
    expect(await nodeArgsOfRun({}, ['--max-semi-space-size=16'])).toEqual(['--no-allocation-site-pretenuring', '--max-semi-space-size=16']);
    expect(await nodeArgsOfRun({ NODE_OPTIONS: '--max-semi-space-size=16' })).toEqual(['--no-allocation-site-pretenuring']);
    expect(await nodeArgsOfRun({ NODE_OPTIONS: '--max_semi_space_size=16' })).toEqual(['--no-allocation-site-pretenuring']);
    expect(await nodeArgsOfRun({}, ['--allocation-site-pretenuring'])).toEqual(['--max-semi-space-size=8', '--allocation-site-pretenuring']);
    expect(await nodeArgsOfRun({ AGENT_SIDECAR_NODE_FLAGS: 'none' })).toEqual([]);
  });

  it('starts the sidecar with MALLOC_ARENA_MAX=2 unless it is set, and keeps it from the agent it runs', async () => {
    const ours = await launch({});
    expect(ours.environ).toContain('MALLOC_ARENA_MAX=2');
    const theirs = await launch({ MALLOC_ARENA_MAX: '4' }, ['--max-semi-space-size=16']);
    expect(theirs.environ.filter((e) => e.startsWith('MALLOC_ARENA_MAX') || e.startsWith('AGENT_SIDECAR_MALLOC'))).toEqual(['MALLOC_ARENA_MAX=4']);
    // `run -- <agent>`: the agent's environment has neither the variable nor the launcher's mark.
    const agent = `console.log('AGENT_ENV=' + JSON.stringify([process.env.MALLOC_ARENA_MAX ?? null, process.env.AGENT_SIDECAR_MALLOC_ARENA_MAX_SET ?? null])); setTimeout(() => {}, 10000)`;
    const wrapped = await launch({}, [], ['run'], 'AGENT_ENV=[', ['--', process.execPath, '-e', agent]);
    expect(wrapped.environ).toContain('MALLOC_ARENA_MAX=2');
    expect(wrapped.out).toContain('AGENT_ENV=[null,null]');
  });
});
