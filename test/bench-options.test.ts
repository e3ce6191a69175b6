import { describe, expect, it } from 'vitest';
import { DEFAULT_SOAK_MINUTES, DEFAULT_TARGETS, parseOptions, withSoakDefault, type BenchOptions } from '../bench/lib/options.ts';

function parse(argv: string[], env: NodeJS.ProcessEnv = {}): BenchOptions {
  const o = parseOptions(argv, env);
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

describe('bench options', () => {
  it('defaults to passthrough with its targets, no soak, 8 streams of 1000 events', () => {
    const o = parse([]);
    expect(o.scenario).toBe('passthrough');
    expect(o.targets).toEqual(['direct', 'nginx', 'undici-proxy', 'agentgateway', 'sidecar']);
    expect(o.soakMinutes).toBe(0);
    expect(o.streams).toBe(8);
    expect(o.events).toBe(1000);
    expect(o.rate).toBe(1000);
    expect(o.source).toBe(false);
  });

  it("runs the sidecars without the launcher's Node.js settings only when asked, and refuses other values", () => {
    expect(parse([]).nodeFlags).toBe('default');
    expect(parse(['--node-flags', 'none']).nodeFlags).toBe('none');
    expect(parse([], { BENCH_NODE_FLAGS: 'none' }).nodeFlags).toBe('none');
    expect(parse(['--node-flags', 'default'], { BENCH_NODE_FLAGS: 'none' }).nodeFlags).toBe('default');
    expect(() => parse(['--node-flags', 'off'])).toThrow(/default or none/);
  });

  it('runs the sidecar from its sources with --source or BENCH_SOURCE', () => {
    expect(parse(['--source']).source).toBe(true);
    expect(parse([], { BENCH_SOURCE: '1' }).source).toBe(true);
    expect(parse([], { BENCH_SOURCE: '0' }).source).toBe(false);
  });

  it('gives each scenario its default targets, peers included', () => {
    expect(parse(['--scenario', 'auth']).targets).toEqual(['direct', 'nginx', 'oauth2-proxy', 'agentgateway', 'sidecar', 'sidecar-auth']);
    expect(parse(['--scenario', 'full']).targets).toEqual(['direct', 'nginx', 'oauth2-proxy', 'agentgateway', 'sidecar-full']);
    expect(parse(['--scenario', 'sse']).targets).toEqual(['direct', 'nginx', 'sidecar']);
    expect(parse(['--scenario', 'protect']).targets).toEqual(DEFAULT_TARGETS.protect);
    expect(parse(['--scenario', 'egress']).targets).toEqual(DEFAULT_TARGETS.egress);
  });

  it('takes the scenario from BENCH_SCENARIO, and the flag over it', () => {
    expect(parse([], { BENCH_SCENARIO: 'full' }).scenario).toBe('full');
    expect(parse(['--scenario', 'sse'], { BENCH_SCENARIO: 'full' }).scenario).toBe('sse');
  });

  it('accepts all, without targets of its own, and refuses --targets with it', () => {
    const o = parse(['--scenario', 'all']);
    expect(o.scenario).toBe('all');
    expect(o.targets).toEqual([]);
    expect(() => parse(['--scenario', 'all', '--targets', 'direct'])).toThrow(/cannot be combined with --scenario all/);
  });

  it('refuses an unknown scenario or target, a target outside its scenarios, and a target twice', () => {
    expect(() => parse(['--scenario', 'chaos'])).toThrow(/unknown scenario "chaos"/);
    expect(() => parse(['--targets', 'direct,envoy'])).toThrow(/unknown target "envoy"/);
    expect(() => parse(['--targets', 'oauth2-proxy'])).toThrow(/oauth2-proxy needs --scenario auth or full or protect/);
    expect(() => parse(['--scenario', 'sse', '--targets', 'agentgateway'])).toThrow(/agentgateway needs --scenario passthrough or auth or full/);
    expect(() => parse(['--scenario', 'sse', '--targets', 'sidecar-full'])).toThrow(/sidecar-full needs --scenario full or protect/);
    expect(() => parse(['--scenario', 'auth', '--targets', 'direct,direct'])).toThrow(/twice/);
  });

  it('lets --targets pick peers in the scenarios that have their fixtures', () => {
    expect(parse(['--scenario', 'full', '--targets', 'oauth2-proxy,sidecar-auth,sidecar-full']).targets).toEqual([
      'oauth2-proxy',
      'sidecar-auth',
      'sidecar-full',
    ]);
    expect(parse(['--scenario', 'sse', '--targets', 'direct,undici-proxy']).targets).toEqual(['direct', 'undici-proxy']);
    expect(parse(['--targets', 'agentgateway,sidecar']).targets).toEqual(['agentgateway', 'sidecar']);
  });

  it('takes --telemetry-signals in the scenarios that export telemetry, in a fixed order', () => {
    expect(parse(['--scenario', 'full', '--telemetry-signals', 'logs,traces']).telemetrySignals).toEqual(['traces', 'logs']);
    expect(() => parse(['--scenario', 'auth', '--telemetry-signals', 'traces'])).toThrow(/needs --scenario telemetry, full, protect or all/);
  });

  it('reads --soak with minutes, alone (the default), or from BENCH_SOAK', () => {
    expect(parse(['--soak', '3']).soakMinutes).toBe(3);
    expect(parse(['--soak']).soakMinutes).toBe(DEFAULT_SOAK_MINUTES);
    expect(parse(['--soak', '--quick']).soakMinutes).toBe(DEFAULT_SOAK_MINUTES);
    expect(parse(['--soak=2']).soakMinutes).toBe(2);
    expect(parse([], { BENCH_SOAK: '4' }).soakMinutes).toBe(4);
    expect(() => parse(['--soak', 'long'])).toThrow(/--soak expects a whole number/);
  });

  it('fills in --soak only where it stands alone', () => {
    expect(withSoakDefault(['--soak'])).toEqual([`--soak=${DEFAULT_SOAK_MINUTES}`]);
    expect(withSoakDefault(['--soak', '-h'])).toEqual([`--soak=${DEFAULT_SOAK_MINUTES}`, '-h']);
    expect(withSoakDefault(['--soak', '7', '--quick'])).toEqual(['--soak', '7', '--quick']);
    expect(withSoakDefault(['--scenario', 'full'])).toEqual(['--scenario', 'full']);
  });

  it('reads the stream options and refuses a zero', () => {
    const o = parse(['--scenario', 'sse', '--streams', '2', '--events', '50']);
    expect([o.streams, o.events]).toEqual([2, 50]);
    expect(() => parse(['--streams', '0'])).toThrow(/--streams expects a whole number ≥ 1/);
  });

  it('shortens everything with --quick unless a duration is given', () => {
    const o = parse(['--quick', '--duration', '5']);
    expect([o.saturationSeconds, o.rateSeconds, o.warmupSeconds, o.rateWarmupSeconds]).toEqual([5, 2, 1, 1]);
  });

  it('warms Node.js servers at the constant rate for 15 s by default, or what --rate-warmup says', () => {
    expect(parse([]).rateWarmupSeconds).toBe(15);
    expect(parse(['--rate-warmup', '0']).rateWarmupSeconds).toBe(0);
    expect(() => parse(['--rate-warmup', 'soon'])).toThrow(/--rate-warmup/);
  });
});
