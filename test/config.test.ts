import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configJsonSchema, loadConfig, substituteEnv, validateConfig } from '../src/config/index.ts';
import { thrownBy } from './thrown.ts';

const EXAMPLE = new URL('../config/sidecar.example.yaml', import.meta.url);

const failure = thrownBy;

describe('configuration', () => {
  it('applies every default from the one schema', () => {
    const c = loadConfig({ env: {} });
    expect(c.listen.address).toBe('0.0.0.0:8080');
    expect(c.upstream.timeouts.connect).toBe(5000);
    expect(c.limits.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(c.shutdown.gracePeriod).toBe(30_000);
    expect(Object.isFrozen(c.upstream.timeouts)).toBe(true);
  });

  it('names the key and what is allowed when a value is wrong', () => {
    const err = failure(() => validateConfig({ upstream: { url: 'ftp://x', timeouts: { connect: 'soon' } }, limits: { maxBodyBytes: -1 } }));
    expect(err.code).toBe('SIDECAR_CONFIG_INVALID');
    const problems = (err.details as { problems: string[] }).problems;
    expect(problems.some((p) => p.startsWith('upstream.url:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('upstream.timeouts.connect:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('limits.maxBodyBytes:'))).toBe(true);
  });

  it('refuses unknown keys, naming them', () => {
    const err = failure(() => validateConfig({ upstream: { ulr: 'http://x' } }));
    expect(err.code).toBe('SIDECAR_CONFIG_INVALID');
    expect((err.details as { problems: string[] }).problems[0]).toContain('upstream.ulr');
  });

  it('refuses an upstream URL with a path', () => {
    expect(failure(() => validateConfig({ upstream: { url: 'http://agent:8000/api' } })).code).toBe('SIDECAR_CONFIG_INVALID');
  });

  it('substitutes ${env:…} after parsing, as text: a value is never parsed', () => {
    const out = substituteEnv(
      {
        a: '${env:PORT}',
        b: 'http://${env:HOST}:${env:PORT}',
        c: '${env:NOPE:-fallback}',
        d: '$${env:LITERAL}',
        e: ['${env:FLAG}'],
        f: '${env:ODD}',
        g: '${env:EMPTY:-}',
      },
      { PORT: '8080', HOST: 'agent', FLAG: 'true', ODD: '&a [*a] # not a comment' },
    );
    expect(out).toEqual({ a: '8080', b: 'http://agent:8080', c: 'fallback', d: '${env:LITERAL}', e: ['true'], f: '&a [*a] # not a comment', g: null });
    expect(failure(() => substituteEnv({ x: { y: '${env:MISSING}' } }, {})).code).toBe('SIDECAR_CONFIG_ENV_MISSING');
  });

  it('lets flags win over SIDECAR_* variables, and those over the file', () => {
    const env = { SIDECAR_UPSTREAM: 'http://from-env:1', SIDECAR_LISTEN: '127.0.0.1:1111' };
    const c = loadConfig({ file: EXAMPLE.pathname, env, overrides: { upstream: 'http://from-flag:2' } });
    expect(c.upstream.url).toBe('http://from-flag:2');
    expect(c.listen.address).toBe('127.0.0.1:1111');
  });

  it('ships an example that is valid and mentions every key of the schema', () => {
    expect(() => loadConfig({ file: EXAMPLE.pathname, env: {} })).not.toThrow();
    const text = readFileSync(EXAMPLE, 'utf8');
    const keys: string[] = [];
    const walk = (node: { properties?: Record<string, unknown> }, prefix: string) => {
      for (const [k, v] of Object.entries(node.properties ?? {})) {
        keys.push(prefix + k);
        walk(v as { properties?: Record<string, unknown> }, `${prefix}${k}.`);
      }
    };
    walk(JSON.parse(configJsonSchema()) as { properties: Record<string, unknown> }, '');
    const missing = keys.filter((k) => !new RegExp(`^\\s*#?\\s*${k.split('.').at(-1)}:`, 'm').test(text));
    expect(missing).toEqual([]);
    expect(parse(text)).toBeTypeOf('object');
  });

  it('keeps config/sidecar.schema.json in step with the schema (npm run schema)', () => {
    expect(readFileSync(new URL('../config/sidecar.schema.json', import.meta.url), 'utf8')).toBe(configJsonSchema());
  });
});

describe('stores.redis', () => {
  it('takes exactly one of url, sentinel and cluster, each checked', async () => {
    const { validateConfig } = await import('../src/config/index.ts');
    const problems = (redis: unknown) => {
      try {
        validateConfig({ stores: { redis } });
        return [];
      } catch (err) {
        return (err as { details: { problems: string[] } }).details.problems;
      }
    };
    expect(problems({ url: 'redis://127.0.0.1:6379' })).toEqual([]);
    expect(problems({ sentinel: { masterName: 'agents', nodes: ['10.0.0.1:26379', '[::1]:26380'] } })).toEqual([]);
    expect(problems({ cluster: { nodes: ['redis://10.0.0.1:7000'] } })).toEqual([]);
    for (const bad of [{}, { url: 'redis://a:1', cluster: { nodes: ['redis://b:2'] } }]) {
      expect(problems(bad).join('\n')).toMatch(/stores\.redis: give exactly one of url .*, sentinel .* and cluster/);
    }
    expect(problems({ sentinel: { masterName: 'agents', nodes: ['nowhere'] } }).join('\n')).toMatch(/stores\.redis\.sentinel\.nodes\.0: expected host:port/);
    expect(problems({ sentinel: { masterName: 'agents', nodes: ['a:70000'] } }).join('\n')).toMatch(/at most 65535/);
    expect(problems({ cluster: { nodes: ['http://x:1'] } }).join('\n')).toMatch(/stores\.redis\.cluster\.nodes\.0: expected redis:\/\//);
  });
});

describe('SIDECAR_RELAY', () => {
  it('turns the OTLP relay on or off over the file, and refuses anything but on or off', async () => {
    const { loadConfig } = await import('../src/config/index.ts');
    expect(loadConfig({ env: { SIDECAR_RELAY: 'on' } }).telemetry.relay.enabled).toBe(true);
    expect(loadConfig({ env: { SIDECAR_RELAY: 'false' } }).telemetry.relay.enabled).toBe(false);
    expect(loadConfig({ env: {} }).telemetry.relay.enabled).toBeUndefined();
    expect(() => loadConfig({ env: { SIDECAR_RELAY: 'maybe' } })).toThrow(/SIDECAR_RELAY=maybe: expected on or off/);
  });

  it('SIDECAR_RELAY_GRPC and SIDECAR_RELAY_HTTP set where its receivers bind, or turn one off; a bad address is the schema’s error', async () => {
    const { loadConfig } = await import('../src/config/index.ts');
    const relay = loadConfig({ env: { SIDECAR_RELAY: 'true', SIDECAR_RELAY_HTTP: '0.0.0.0:4318', SIDECAR_RELAY_GRPC: 'off' } }).telemetry.relay;
    expect(relay).toMatchObject({ enabled: true, http: '0.0.0.0:4318', grpc: false });
    expect(() => loadConfig({ env: { SIDECAR_RELAY_HTTP: 'nowhere' } })).toThrow(/telemetry\.relay\.http/);
  });
});
