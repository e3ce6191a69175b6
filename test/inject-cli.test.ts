import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyPatch } from 'diff';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { spawnCli } from './helpers.ts';
import { fixture } from './inject-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLEAN_ENV: NodeJS.ProcessEnv = {
  SIDECAR_CONFIG: '',
  SIDECAR_LISTEN: '',
  SIDECAR_UPSTREAM: '',
  SIDECAR_ADMIN: '',
  SIDECAR_LOG_LEVEL: '',
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
};
const dir = mkdtempSync(join(tmpdir(), 'sidecar-inject-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[], input?: string, cwd = ROOT) {
  const proc = spawnCli(['inject', ...args], CLEAN_ENV, { ...(input === undefined ? {} : { input }), cwd });
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

const helm = fixture('helm-agents.yaml');
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('agent-sidecar inject (the CLI)', () => {
  it('filters stdin to stdout and reports each change on stderr', async () => {
    const r = await cli([], helm);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('name: agent-sidecar');
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) expect(line).toMatch(/^inject: (document \d+|new document)/);
    const again = await cli([], r.stdout);
    expect(again.stdout).toBe(r.stdout);
    expect(again.stderr).toBe('inject: no change\n');
  });

  it('-f and -o: writes the file, nothing on stdout; --uninject gives the input back', async () => {
    const input = write('in.yaml', helm);
    const out = join(dir, 'out.yaml');
    const r = await cli(['-f', input, '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const back = await cli(['--uninject', '-f', out]);
    expect(back.code).toBe(0);
    expect(back.stdout).toBe(helm);
  });

  it('--diff prints a unified diff that turns the input into the result', async () => {
    const input = write('diff.yaml', helm);
    const [result, diff] = await Promise.all([cli(['-f', input]), cli(['-f', input, '--diff'])]);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toMatch(/^--- .*diff\.yaml\n\+\+\+ .*diff\.yaml\n@@ /m);
    expect(diff.stdout).toContain('\n+      - name: agent-sidecar\n');
    expect(applyPatch(helm, diff.stdout)).toBe(result.stdout);
  });

  it('bad input: exit status 2, the code on stderr, and the -o file left as it was, with no temporary file', async () => {
    const out = write('kept.yaml', 'untouched: true\n');
    const bad = write('bad.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: [\n');
    const r = await cli(['-f', bad, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml:\d+: document 1 is not valid YAML.*\[SIDECAR_INJECT_PARSE\]/s);
    expect(readFileSync(out, 'utf8')).toBe('untouched: true\n');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const noPort = await cli([], 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: a\n    image: a\n');
    expect(noPort.code).toBe(2);
    expect(noPort.stdout).toBe('');
    expect(noPort.stderr).toContain('stdin:7: document 1 (Pod/a): spec.containers[0].ports: ');
    expect(noPort.stderr).toContain('[SIDECAR_INJECT_PORT_NOT_FOUND]');
  });

  it('an unreadable input or unwritable output: exit status 2 with its code', async () => {
    const missing = await cli(['-f', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('[SIDECAR_INJECT_UNREADABLE]');
    const unwritable = await cli(['-o', join(dir, 'no-such-dir', 'out.yaml')], helm);
    expect(unwritable.code).toBe(2);
    expect(unwritable.stderr).toContain('[SIDECAR_INJECT_UNWRITABLE]');
    expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
  });

  it('flags that do not go together: exit status 2, SIDECAR_USAGE_INVALID', async () => {
    for (const args of [
      ['--compose', 'c.yaml'],
      ['--service', 'agent'],
      ['-f', 'a.yaml', '--compose', 'c.yaml', '--service', 'a'],
      ['--ingress-port', 'x'],
      ['--compose', 'c.yaml', '--service', 'a', '--credential-secret', 'llm-keys'],
    ]) {
      const r = await cli(args, '');
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('[SIDECAR_USAGE_INVALID]');
    }
  });

  it('--compose with --configmap-from mounts the file relative to the compose file', async () => {
    const composeFile = write('compose.yaml', fixture('compose.yaml'));
    const config = write('sidecar.yaml', 'upstream:\n  healthPath: /health\n');
    const r = await cli(['--compose', composeFile, '--service', 'agent', '--configmap-from', config]);
    expect(r.code).toBe(0);
    const sidecar = (parse(r.stdout) as { services: Record<string, { volumes: string[] }> }).services['agent-sidecar']!;
    expect(sidecar.volumes).toEqual(['./sidecar.yaml:/etc/agent-sidecar/sidecar.yaml:ro']);
  });

  it('deploy/kubernetes/agent-injected.yaml is what the CLI makes of agent.yaml today (npm run inject:example)', async () => {
    const r = await cli(['-f', 'deploy/kubernetes/agent.yaml', '--configmap-from', 'deploy/kubernetes/sidecar.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout, 'stale: run npm run inject:example').toBe(readFileSync(join(ROOT, 'deploy/kubernetes/agent-injected.yaml'), 'utf8'));
    const back = await cli(['--uninject', '-f', 'deploy/kubernetes/agent-injected.yaml']);
    expect(back.stdout).toBe(readFileSync(join(ROOT, 'deploy/kubernetes/agent.yaml'), 'utf8'));
  });
});
