import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { checkSidecar } from '../src/check.ts';
import { loadConfig } from '../src/config/index.ts';
import { catalog, isSidecarError } from '../src/errors/index.ts';
import { CLEAN_ENV, runCli, STACK_FRAME } from './cli-run.ts';

/**
 * Mutated configurations, from the shipped ones: keys deleted, duplicated, retyped, set to
 * huge, negative or fractional numbers, to ${env:…} references whose values are full of YAML
 * indicators, nested deep, shared through aliases, alias bombs. Each one must either pass or
 * fail the way the CLI promises (a SidecarError: exit 2, one message, no stack trace), within
 * a few seconds, and no message may show a value substituted from the environment.
 *
 * Deterministic: the cases come from a seeded generator (CONFIG_FUZZ_SEED to try others).
 * The bulk goes through the loader and the offline assembly validate runs, in this process;
 * a handful through the real CLI to hold the process to the same outcome.
 */

const SEED = Number(process.env.CONFIG_FUZZ_SEED ?? 20_251_206);
const CASES = 220;
const CLI_CASES = 6;

/** mulberry32: small, seeded, good enough to pick mutations. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof generator>;

const ROOT = new URL('..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8');

// Small documents beside the shipped ones, so that every section gets mutated often.
const FIXTURES = [
  'auth:\n  jwt:\n    secret: ${env:FUZZ_SECRET}\n    algorithms: [HS256]\n    cacheSize: 100\n  refresh: { enabled: true }\nrateLimit:\n  perPrincipal: { requests: 10, per: 1s }\n  routes:\n    - { path: /api/*, requests: 5, per: 1m, methods: [POST] }\n',
  'protection:\n  rules:\n    strict:\n      detectors: { ip: redact, email: hash }\n      custom:\n        - { name: order_ref, pattern: "ORD-[0-9]{6}", flags: i }\n  routes:\n    - { path: /api/*, rules: strict }\n  hashKey: { env: FUZZ_HASH_KEY }\n',
  'telemetry:\n  enabled: true\n  headers: { x-tenant: acme }\n  traces: { queueSize: 100, batchSize: 10, sampleRatio: 0.5, trustIncoming: [loopback, 10.0.0.0/8] }\n  logs: { queueSize: 50, batchSize: 5 }\n  metrics: { exportInterval: 5s, maxSessions: 1000 }\n',
  'egress:\n  maxRequestBytes: 8mb\n  prices:\n    my-model: { input: 1, output: 2, longContext: { above: 200000, input: 2, output: 4 } }\n  budgets:\n    limits: [{ window: day, usd: 10, model: "claude-*" }]\n  capture: { prompts: true, maxChars: 100 }\n',
  'limits: { maxHeaderBytes: 32kb, maxBodyBytes: 1mb, clientHeadersTimeout: 10s, clientRequestTimeout: 1m }\nproxy: { trustedProxies: [loopback, 192.168.0.0/16], requestIdHeader: x-req }\ncors: { allowedOrigins: [https://app.example.com], maxAge: 1h }\n',
];
const BASES = [read('config/sidecar.example.yaml'), read('deploy/compose/sidecar.yaml'), read('deploy/kubernetes/sidecar.yaml'), ...FIXTURES];

const ENV_VALUES = [
  '@at-sign',
  '*alias',
  '&anchor',
  '%directive',
  '`backtick',
  '{flow: map}',
  '[flow, list]',
  '! tag',
  '!!binary',
  '| literal',
  '> folded',
  '"double"',
  "'single'",
  '- item',
  '? key',
  ': colon',
  'a #comment',
  '#only',
  '---',
  '...',
  '~',
  'null',
  'true',
  'FALSE',
  'yes',
  'off',
  '0',
  '-1',
  '1e12',
  '1e999',
  '0x1F',
  '1.5',
  '  42  ',
  '',
  ' ',
  '\t',
  'line\nbreak',
  'ünïcødé ✓',
  '${env:NESTED}',
  '$${literal}',
  'a: &a [*a]',
  '['.repeat(5000) + ']'.repeat(5000),
  'x'.repeat(100_000),
  '12345678901234567890123456789012345678901234567890',
];
const SPECIAL_PATHS = ['/dev/zero', '/dev/null', '/', '/proc/self/status', 'config/demo-policy.yaml', 'no/such/file.yaml'];
const NUMBERS = [0, -1, -0.5, 1.5, 1e12, 1e308, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 3, 65536, 0.0001];
const STRINGS = [
  '',
  'x',
  '16kb',
  '99999gb',
  '1.5b',
  '0.5ms',
  '30d',
  '5m',
  'http://127.0.0.1:1',
  'redis://[::1',
  '127.0.0.1:0',
  '0.0.0.0:8080',
  '*',
  'HS256',
  'a b',
  'x\r\ny',
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function paths(doc: Json, prefix: string[] = [], out: string[][] = []): string[][] {
  if (doc !== null && typeof doc === 'object') {
    for (const [k, v] of Array.isArray(doc) ? doc.map((v, i) => [String(i), v] as const) : Object.entries(doc)) {
      out.push([...prefix, k]);
      if (prefix.length < 8) paths(v, [...prefix, k], out);
    }
  }
  return out;
}

function parentOf(doc: Json, path: string[]): { parent: Record<string, Json> | Json[]; key: string } | undefined {
  let node: Json = doc;
  for (const k of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = Array.isArray(node) ? node[Number(k)]! : node[k]!;
  }
  if (node === null || typeof node !== 'object') return undefined;
  return { parent: node, key: path.at(-1)! };
}

function set(doc: Json, path: string[], value: Json): void {
  const at = parentOf(doc, path);
  if (at === undefined) return;
  if (Array.isArray(at.parent)) at.parent[Number(at.key)] = value;
  else at.parent[at.key] = value;
}

function randomValue(r: Rng, depth = 0): Json {
  switch (r.int(depth > 1 ? 4 : 7)) {
    case 0:
      return r.pick(NUMBERS);
    case 1:
      return r.pick(STRINGS);
    case 2:
      return r.next() < 0.5;
    case 3:
      return r.pick([null, r.pick(SPECIAL_PATHS)]);
    case 4:
      return Array.from({ length: r.int(3) }, () => randomValue(r, depth + 1));
    case 5:
      return Object.fromEntries(
        Array.from({ length: r.int(3) }, () => [r.pick(['url', 'enabled', 'x', 'file', 'secret', 'requests']), randomValue(r, depth + 1)]),
      );
    default: {
      let v: Json = r.pick(STRINGS);
      for (let i = 0, n = r.pick([2, 5, 30, 100]); i < n; i++) v = [v];
      return v;
    }
  }
}

interface Case {
  name: string;
  text: string;
  env: Record<string, string>;
  /** Substituted values that no message may show. */
  secrets: string[];
}

/** One mutated document: 1 to 3 mutations of a base. */
function makeCase(r: Rng, n: number): Case {
  const base = r.pick(BASES);
  const doc = (parse(base) ?? {}) as Json;
  const env: Record<string, string> = { FUZZ_SECRET: 's'.repeat(40), FUZZ_HASH_KEY: 'a'.repeat(64), JWT_SECRET: 'j'.repeat(40) };
  const secrets: string[] = [];
  const done: string[] = [];
  const textMutations: Array<(text: string) => string> = [];
  for (let m = 0, count = r.pick([1, 1, 1, 2, 2, 3]); m < count; m++) {
    const all = paths(doc);
    const path = all.length > 0 ? r.pick(all) : ['upstream'];
    // Mostly mutations that keep the YAML well-formed, so that most cases reach the schema and the assembly.
    const kind = r.pick([
      'delete',
      'delete',
      'retype',
      'retype',
      'retype',
      'number',
      'number',
      'env',
      'env',
      'env',
      'deep',
      'alias',
      'alias',
      'unknown',
      'file',
      'file',
      'duplicate',
      'bomb',
      'self',
    ] as const);
    done.push(`${kind} ${path.join('.')}`);
    switch (kind) {
      case 'delete': {
        const at = parentOf(doc, path);
        if (at && !Array.isArray(at.parent)) delete at.parent[at.key];
        break;
      }
      case 'retype':
        set(doc, path, randomValue(r));
        break;
      case 'number':
        set(doc, path, r.pick(NUMBERS));
        break;
      case 'env': {
        const name = `FUZZ_${n}_${m}`;
        const marker = `zq${n}x${m}secret`;
        // Half carry a marker that must never be shown; all are full of YAML's indicators.
        const value = r.next() < 0.5 ? `${r.pick(ENV_VALUES)}${marker}${r.pick(ENV_VALUES)}` : r.pick(ENV_VALUES);
        env[name] = value;
        if (value.includes(marker)) secrets.push(marker);
        set(doc, path, r.next() < 0.8 ? `\${env:${name}}` : `x-\${env:${name}}-y`);
        break;
      }
      case 'deep': {
        let v: Json = 'leaf';
        for (let i = 0, depth = r.pick([3, 10, 60, 70, 300, 1000]); i < depth; i++) v = r.next() < 0.5 ? [v] : { k: v };
        set(doc, path, v);
        break;
      }
      case 'alias': {
        // The same object in two places: stringify writes an anchor and an alias.
        const other = r.pick(all.length > 0 ? all : [path]);
        const at = parentOf(doc, other);
        const shared = at === undefined ? null : Array.isArray(at.parent) ? at.parent[Number(at.key)] : at.parent[at.key];
        if (shared !== null && typeof shared === 'object') set(doc, path, shared);
        break;
      }
      case 'unknown':
        set(doc, [...path.slice(0, -1), r.pick(['ulr', 'enabeld', 'x-extra', 'Secret'])], r.next() < 0.5 ? null : randomValue(r));
        break;
      case 'duplicate':
        textMutations.push((text) => {
          const lines = text.split('\n');
          const keyed = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\s*[A-Za-z][\w-]*:/.test(l));
          if (keyed.length === 0) return text;
          const [line, i] = r.pick(keyed);
          lines.splice(i, 0, line);
          return lines.join('\n');
        });
        break;
      case 'bomb':
        textMutations.push((text) => {
          const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
          const bomb = levels.map((l, i) =>
            i === 0
              ? `x${l}: &${l} [lol, lol, lol, lol, lol, lol, lol, lol]`
              : `x${l}: &${l} [${Array(8)
                  .fill(`*${levels[i - 1]}`)
                  .join(', ')}]`,
          );
          return `${bomb.join('\n')}\n${text}`;
        });
        break;
      case 'self':
        textMutations.push((text) => `${text}\n${r.pick(['upstream', 'limits', 'auth'])}x: &self\n  loop: [*self]\n`);
        break;
      case 'file':
        set(
          doc,
          r.pick([
            ['policy', 'file'],
            ['auth', 'apiKeys', 'file'],
            ['protection', 'keys', 'file'],
            ['auth', 'jwt', 'keyFiles'],
          ]),
          r.pick(SPECIAL_PATHS),
        );
        break;
    }
  }
  let text = stringify(doc, { aliasDuplicateObjects: true, lineWidth: 0 });
  for (const mutate of textMutations) text = mutate(text);
  return { name: `#${n}: ${done.join(', ')}`, text, env, secrets };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecar-fuzz-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The loader and the offline assembly, as validate runs them: 'ok', or the SidecarError's code. */
async function outcome(c: Case, file: string): Promise<{ result: string; message: string; ms: number }> {
  const started = performance.now();
  try {
    await checkSidecar(loadConfig({ file, env: { ...process.env, ...CLEAN_ENV, ...c.env } }));
    return { result: 'ok', message: '', ms: performance.now() - started };
  } catch (err) {
    // Anything else would be exit 1 with a stack trace.
    expect(isSidecarError(err), `${c.name}: ${(err as Error).stack}`).toBe(true);
    return { result: (err as { code: string }).code, message: (err as Error).message, ms: performance.now() - started };
  }
}

describe(`config fuzz (seed ${SEED})`, () => {
  const r = generator(SEED);
  const cases = Array.from({ length: CASES }, (_, n) => makeCase(r, n));
  const outcomes = new Map<number, string>();

  it(`${CASES} mutated configurations pass or fail as the CLI promises, in process`, { timeout: 180_000 }, async () => {
    const tally = new Map<string, number>();
    for (const [n, c] of cases.entries()) {
      const file = join(dir, `case-${n}.yaml`);
      writeFileSync(file, c.text);
      const o = await outcome(c, file);
      outcomes.set(n, o.result);
      tally.set(o.result, (tally.get(o.result) ?? 0) + 1);
      expect(o.result, c.name).not.toBe('SIDECAR_INTERNAL');
      expect(Object.hasOwn(catalog, o.result) || o.result === 'ok', c.name).toBe(true);
      expect(o.message, c.name).not.toMatch(STACK_FRAME);
      for (const s of c.secrets) expect(o.message, `${c.name}: shows a substituted value`).not.toContain(s);
      expect(o.ms, `${c.name}: took ${o.ms} ms`).toBeLessThan(5_000);
    }
    // The generator reaches both sides: some stay valid, most are refused, for several reasons.
    expect(tally.get('ok') ?? 0).toBeGreaterThan(5);
    expect([...tally.keys()].length).toBeGreaterThan(4);
  });

  it(`${CLI_CASES} of them through the real CLI: exit 0 or 2, the same code, one message, no stack trace`, { timeout: 120_000 }, async () => {
    const chosen = Array.from({ length: CLI_CASES }, (_, i) => Math.floor((i * CASES) / CLI_CASES) + 3);
    // Make sure the CLI sees at least one valid case, if there is one.
    const valid = [...outcomes.entries()].find(([, o]) => o === 'ok');
    if (valid !== undefined && !chosen.some((n) => outcomes.get(n) === 'ok')) chosen[0] = valid[0];
    for (const n of chosen) {
      const c = cases[n]!;
      const expected = outcomes.get(n);
      expect(expected, `${c.name}: run the in-process test first`).toBeDefined();
      const res = await runCli(['validate', '--config', join(dir, `case-${n}.yaml`)], c.env, { timeoutMs: 20_000 });
      const context = `${c.name}\n${res.stderr}`;
      expect(res.killed, context).toBe(false);
      expect(res.code, context).toBe(expected === 'ok' ? 0 : 2);
      if (expected !== 'ok') {
        expect(res.stderr, context).toContain(`[${expected}]`);
        expect(res.stderr, context).toMatch(/^agent-sidecar: /);
      }
      expect(res.stderr + res.stdout, context).not.toMatch(STACK_FRAME);
      for (const s of c.secrets) expect(res.stderr + res.stdout, context).not.toContain(s);
    }
  });
});
