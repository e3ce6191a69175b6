/**
 * Every collector configuration we ship, checked by the distribution they are written for
 * (`validate` loads the configuration and builds every component's config exactly as a
 * start would), and the distribution holds exactly the components those configurations use.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { locateStack } from '../../scripts/stack/build.ts';
import { REPO } from '../../scripts/stack/cache.ts';

const stack = locateStack();
const COLLECTOR = join(REPO, 'collector');
const BASE = join(COLLECTOR, 'otelcol.yaml');
const PROFILES = readdirSync(join(COLLECTOR, 'profiles'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => join(COLLECTOR, 'profiles', f));
const scratch = mkdtempSync(join(tmpdir(), 'agent-sidecar-otelcol-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(binary: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(binary, args, { encoding: 'utf8', env: { ...process.env, OTELCOL_STORAGE_DIR: join(scratch, 'storage') }, timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * The files a profile's header says to run it with (`otelcol-agent-sidecar --config ... --config ...`):
 * a profile may build on another (gateway-tier on high-volume), and what is validated is
 * the command line a reader copies.
 */
function documentedStack(profile: string): string[] {
  const usage = readFileSync(profile, 'utf8')
    .split('\n')
    .find((line) => /^#\s+otelcol-agent-sidecar .*--config/.test(line));
  if (usage === undefined) throw new Error(`${profile} shows no command line to run it with`);
  return [...usage.matchAll(/--config (\S+)/g)].map((m) => join(REPO, m[1]!));
}

const KINDS = ['receivers', 'processors', 'exporters', 'extensions'] as const;

/** Component types a configuration file declares (`otlp_grpc/jaeger` is of type `otlp_grpc`). */
function typesIn(file: string): Record<(typeof KINDS)[number], Set<string>> {
  const doc = parse(readFileSync(file, 'utf8')) as Partial<Record<(typeof KINDS)[number], Record<string, unknown>>>;
  return Object.fromEntries(KINDS.map((k) => [k, new Set(Object.keys(doc[k] ?? {}).map((id) => id.split('/')[0]!))])) as Record<
    (typeof KINDS)[number],
    Set<string>
  >;
}

describe('the collector configurations, validated by the built distribution', () => {
  it('otelcol.yaml alone is valid', () => {
    const r = run(stack.collector, ['validate', '--config', BASE]);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it.each(PROFILES.map((p) => [p.split('/').pop()!, p]))('profiles/%s is valid as its header says to run it', (_name, profile) => {
    const files = documentedStack(profile);
    expect(files[0]).toBe(BASE);
    expect(files.at(-1)).toBe(profile);
    const r = run(stack.collector, ['validate', ...files.flatMap((f) => ['--config', f])]);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('a mistake is refused: validate is no formality', () => {
    const broken = join(scratch, 'broken.yaml');
    writeFileSync(broken, readFileSync(BASE, 'utf8').replace('allow_all_keys: true', 'allow_all_keyz: true'));
    const r = run(stack.collector, ['validate', '--config', broken]);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('allow_all_keyz');
  });

  it('the distribution holds exactly the components the configurations use', () => {
    const r = run(stack.collector, ['components']);
    expect(r.status).toBe(0);
    const built = parse(r.output) as Record<string, Array<{ name: string }>>;
    const used = [BASE, ...PROFILES].map(typesIn);
    for (const kind of KINDS) {
      const inUse = new Set(used.flatMap((u) => [...u[kind]]));
      expect(new Set(built[kind]!.map((c) => c.name)), kind).toEqual(inUse);
    }
  });

  it("Jaeger's configuration is valid for the Jaeger we run", () => {
    const r = run(stack.jaeger, ['validate', '--config', join(REPO, 'config', 'jaeger', 'config.yaml')]);
    expect(r.status, r.output).toBe(0);
  });
});
