import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { validateConfig, type SidecarConfigInput } from '../src/config/index.ts';
import { NO_TIMEOUT, resolveExportSettings, resolveSettings } from '../src/telemetry/settings.ts';
import { spawnCli, startServer, waitForStartup } from './helpers.ts';
import { startOtlpReceiver } from './otlp-receiver.ts';

const telemetry = (t: NonNullable<SidecarConfigInput['telemetry']> = {}) => validateConfig({ telemetry: t }).telemetry;
const resolve = (env: NodeJS.ProcessEnv, t?: NonNullable<SidecarConfigInput['telemetry']>) => resolveExportSettings(telemetry(t), env);

describe('telemetry settings: batching, timeouts and exporters', () => {
  it('ships our defaults when neither a key nor a variable is set', () => {
    const s = resolve({});
    expect(s.traces).toEqual({ enabled: true, queueSize: 2048, batchSize: 512, scheduledDelay: 5000, exportTimeout: 10_000 });
    expect(s.logs).toEqual({ otlp: true, stdout: false, queueSize: 2048, batchSize: 512, scheduledDelay: 1000, exportTimeout: 10_000 });
    expect(s.metrics).toEqual({ otlp: true, exportInterval: 15_000, exportTimeout: 10_000 });
    expect(s.warnings).toEqual([]);
  });

  it('gives access records one sink by default: OTLP when log records are exported, else stdout', () => {
    expect(resolve({}).logs).toMatchObject({ otlp: true, stdout: false });
    expect(resolve({}, { logs: { otlp: false } }).logs).toMatchObject({ otlp: false, stdout: true });
    expect(resolve({ OTEL_LOGS_EXPORTER: 'none' }).logs).toMatchObject({ otlp: false, stdout: true });
    // Both sinks, or none, only when asked for.
    expect(resolve({}, { logs: { stdout: true } }).logs).toMatchObject({ otlp: true, stdout: true });
    expect(resolve({}, { logs: { otlp: false, stdout: false } }).logs).toMatchObject({ otlp: false, stdout: false });
  });

  it('takes the standard variables when the configuration leaves the keys out', () => {
    const s = resolve({
      OTEL_BSP_SCHEDULE_DELAY: '250',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20',
      OTEL_BLRP_SCHEDULE_DELAY: '0',
      OTEL_BLRP_MAX_QUEUE_SIZE: ' 300 ',
      OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '30',
      OTEL_METRIC_EXPORT_INTERVAL: '60000',
      OTEL_EXPORTER_OTLP_TIMEOUT: '7000',
    });
    expect(s.traces).toMatchObject({ queueSize: 100, batchSize: 20, scheduledDelay: 250, exportTimeout: 7000 });
    expect(s.logs).toMatchObject({ queueSize: 300, batchSize: 30, scheduledDelay: 0, exportTimeout: 7000 });
    expect(s.metrics).toMatchObject({ exportInterval: 60_000, exportTimeout: 7000 });
    expect(s.warnings).toEqual([]);
  });

  it('lets a key the configuration sets win over its variable, and only that key', () => {
    const env = {
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_SCHEDULE_DELAY: '250',
      OTEL_METRIC_EXPORT_INTERVAL: '1000',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    };
    const s = resolve(env, { traces: { enabled: true, queueSize: 4000 }, metrics: { exportInterval: '30s' }, logs: { otlp: false } });
    expect(s.traces).toMatchObject({ enabled: true, queueSize: 4000, scheduledDelay: 250 });
    expect(s.metrics.exportInterval).toBe(30_000);
    expect(s.logs.otlp).toBe(false);
  });

  it('keeps a batch no larger than its queue, from keys and variables alike', () => {
    expect(resolve({ OTEL_BSP_MAX_QUEUE_SIZE: '64', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512' }).traces).toMatchObject({ queueSize: 64, batchSize: 64 });
    expect(resolve({ OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '100' }, { logs: { queueSize: 10 } }).logs).toMatchObject({ queueSize: 10, batchSize: 10 });
  });

  it('prefers a signal-specific OTLP timeout over the general one, and telemetry.exportTimeout over both', () => {
    const env = { OTEL_EXPORTER_OTLP_TIMEOUT: '7000', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '3000', OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '4000' };
    const s = resolve(env);
    expect([s.traces.exportTimeout, s.metrics.exportTimeout, s.logs.exportTimeout]).toEqual([3000, 4000, 7000]);
    const c = resolve(env, { exportTimeout: '2s' });
    expect([c.traces.exportTimeout, c.metrics.exportTimeout, c.logs.exportTimeout]).toEqual([2000, 2000, 2000]);
  });

  it("bounds an export by the processor's timeout when it is the lower one; 0 is no limit", () => {
    const s = resolve({
      OTEL_BSP_EXPORT_TIMEOUT: '2500',
      OTEL_BLRP_EXPORT_TIMEOUT: '30000',
      OTEL_METRIC_EXPORT_TIMEOUT: '0',
      OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '0',
    });
    expect(s.traces.exportTimeout).toBe(2500);
    expect(s.logs.exportTimeout).toBe(30_000);
    expect(s.metrics.exportTimeout).toBe(10_000);
    expect(resolve({ OTEL_EXPORTER_OTLP_TIMEOUT: '0' }).traces.exportTimeout).toBe(NO_TIMEOUT);
    // A metrics export never outlives its interval: the reader starts the next one then.
    expect(resolve({ OTEL_EXPORTER_OTLP_TIMEOUT: '0' }).metrics.exportTimeout).toBe(15_000);
    expect(resolve({ OTEL_METRIC_EXPORT_INTERVAL: '2000' }).metrics.exportTimeout).toBe(2000);
    expect(resolve({}, { exportTimeout: 0 }).logs.exportTimeout).toBe(NO_TIMEOUT);
  });

  it("turns a signal's OTLP export off with none, and metrics with prometheus; a comma list with otlp keeps it", () => {
    const off = resolve({ OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'Prometheus', OTEL_LOGS_EXPORTER: ' NONE ' });
    expect([off.traces.enabled, off.metrics.otlp, off.logs.otlp]).toEqual([false, false, false]);
    const on = resolve({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_METRICS_EXPORTER: 'prometheus,otlp', OTEL_LOGS_EXPORTER: '' });
    expect([on.traces.enabled, on.metrics.otlp, on.logs.otlp]).toEqual([true, true, true]);
    expect(off.warnings).toEqual([]);
    expect(on.warnings).toEqual([]);
  });

  it('ignores exporters it does not have with a warning, keeping otlp', () => {
    const s = resolve({ OTEL_TRACES_EXPORTER: 'zipkin', OTEL_LOGS_EXPORTER: 'console,none', OTEL_METRICS_EXPORTER: 'prometheus' });
    expect(s.traces.enabled).toBe(true);
    expect(s.logs.otlp).toBe(false);
    expect(s.warnings.map((w) => w.message)).toEqual([
      'OTEL_TRACES_EXPORTER="zipkin": zipkin ignored, the exporters here are otlp or none; using otlp',
      'OTEL_LOGS_EXPORTER="console,none": console ignored, the exporters here are otlp or none; using no OTLP export',
    ]);
  });

  it('ignores each bad number with one stable warning naming the variable, the value and what applies instead', () => {
    const s = resolve({
      OTEL_BSP_MAX_QUEUE_SIZE: '-5',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '0',
      OTEL_BSP_SCHEDULE_DELAY: '5s',
      OTEL_BLRP_MAX_QUEUE_SIZE: '1.5',
      OTEL_BLRP_SCHEDULE_DELAY: '-1',
      OTEL_METRIC_EXPORT_INTERVAL: '0',
      OTEL_METRIC_EXPORT_TIMEOUT: 'soon',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1e4',
      OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '99999999999',
    });
    expect(s.traces).toMatchObject({ queueSize: 2048, batchSize: 512, scheduledDelay: 5000, exportTimeout: 10_000 });
    expect(s.logs).toMatchObject({ queueSize: 2048, scheduledDelay: 1000, exportTimeout: 10_000 });
    expect(s.metrics).toMatchObject({ exportInterval: 15_000, exportTimeout: 10_000 });
    expect(s.warnings.every((w) => w.code === 'SIDECAR_OTEL_ENV_INVALID')).toBe(true);
    // One line per variable, even though OTEL_EXPORTER_OTLP_TIMEOUT is read for all three signals.
    expect(Object.fromEntries(s.warnings.map((w) => [w.variable, w.message]))).toEqual({
      OTEL_BSP_MAX_QUEUE_SIZE: 'OTEL_BSP_MAX_QUEUE_SIZE="-5": ignored, expected a positive integer; using 2048 (the default)',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE="0": ignored, expected a positive integer; using 512 (the default)',
      OTEL_BSP_SCHEDULE_DELAY: 'OTEL_BSP_SCHEDULE_DELAY="5s": ignored, expected a whole number of milliseconds; using 5000 ms (the default)',
      OTEL_BLRP_MAX_QUEUE_SIZE: 'OTEL_BLRP_MAX_QUEUE_SIZE="1.5": ignored, expected a positive integer; using 2048 (the default)',
      OTEL_BLRP_SCHEDULE_DELAY: 'OTEL_BLRP_SCHEDULE_DELAY="-1": ignored, expected a whole number of milliseconds; using 1000 ms (the default)',
      OTEL_METRIC_EXPORT_INTERVAL: 'OTEL_METRIC_EXPORT_INTERVAL="0": ignored, expected a whole number of milliseconds above 0; using 15000 ms (the default)',
      OTEL_METRIC_EXPORT_TIMEOUT:
        'OTEL_METRIC_EXPORT_TIMEOUT="soon": ignored, expected a whole number of milliseconds, 0 for no limit; using 10000 ms (the exporter\'s timeout)',
      OTEL_EXPORTER_OTLP_TIMEOUT:
        'OTEL_EXPORTER_OTLP_TIMEOUT="1e4": ignored, expected a whole number of milliseconds, 0 for no limit; using 10000 ms (the default)',
      OTEL_EXPORTER_OTLP_LOGS_TIMEOUT:
        'OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="99999999999": ignored, expected a whole number of milliseconds, 0 for no limit; using 10000 ms (the default)',
    });
    expect(s.warnings.find((w) => w.variable === 'OTEL_BSP_MAX_QUEUE_SIZE')).toMatchObject({ value: '-5', using: '2048 (the default)' });
  });

  it('falls back from a bad signal-specific timeout to the general variable, and says so', () => {
    const s = resolve({ OTEL_EXPORTER_OTLP_TIMEOUT: '4000', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: 'abc' });
    expect(s.traces.exportTimeout).toBe(4000);
    expect(s.warnings.map((w) => w.using)).toEqual(['4000 ms (OTEL_EXPORTER_OTLP_TIMEOUT)']);
  });

  it('does not read, or warn about, a variable whose key the configuration sets', () => {
    const s = resolve(
      { OTEL_BSP_MAX_QUEUE_SIZE: 'lots', OTEL_EXPORTER_OTLP_TIMEOUT: 'x', OTEL_TRACES_EXPORTER: 'zipkin' },
      { exportTimeout: '3s', traces: { queueSize: 10, enabled: true } },
    );
    expect(s.traces).toMatchObject({ queueSize: 10, exportTimeout: 3000, enabled: true });
    expect(s.warnings).toEqual([]);
  });

  it('reports no warnings when telemetry is off', () => {
    const env = { OTEL_BSP_MAX_QUEUE_SIZE: '-1', OTEL_SDK_DISABLED: 'true' };
    expect(resolveSettings(telemetry(), env).warnings).toEqual([]);
    expect(resolveSettings(telemetry(), { OTEL_BSP_MAX_QUEUE_SIZE: '-1' }).warnings).toHaveLength(1);
  });
});

describe('telemetry settings: endpoints and sampler', () => {
  it("takes each signal's endpoint variable over the general one, and telemetry.endpoint over both", () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example:443' };
    const s = resolveSettings(telemetry(), env);
    expect(s.endpoints).toEqual({ traces: 'https://traces.example:443', metrics: 'http://collector:4317', logs: 'http://collector:4317' });
    expect(s.endpointShown).toBe('traces https://traces.example:443, metrics http://collector:4317, logs http://collector:4317');
    const c = resolveSettings(telemetry({ endpoint: 'http://10.0.0.9:4317' }), env);
    expect(c.endpoints).toEqual({ traces: 'http://10.0.0.9:4317', metrics: 'http://10.0.0.9:4317', logs: 'http://10.0.0.9:4317' });
    expect(c.endpointShown).toBe('http://10.0.0.9:4317');
    expect(resolveSettings(telemetry(), { OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:4317' }).endpoints).toEqual({
      traces: 'http://127.0.0.1:4317',
      metrics: 'http://127.0.0.1:4317',
      logs: 'http://logs:4317',
    });
  });

  it('ignores a sampler it does not have, or a ratio outside 0..1, with a warning', () => {
    const bad = resolveSettings(telemetry(), { OTEL_TRACES_SAMPLER: 'jaeger_remote' });
    expect(bad.samplerShown).toBe('parentbased_always_on');
    expect(bad.warnings.map((w) => [w.variable, w.code, w.using])).toEqual([
      ['OTEL_TRACES_SAMPLER', 'SIDECAR_OTEL_ENV_INVALID', 'parentbased_always_on (the default)'],
    ]);
    const ratio = resolveSettings(telemetry(), { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' });
    expect(ratio.samplerShown).toBe('parentbased_traceidratio 1');
    expect(ratio.warnings.map((w) => w.message)).toEqual(['OTEL_TRACES_SAMPLER_ARG="1.5": ignored, expected a ratio from 0 to 1; using 1 (the default)']);
    const good = resolveSettings(telemetry(), { OTEL_TRACES_SAMPLER: 'TraceIdRatio', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    expect([good.samplerShown, good.warnings]).toEqual(['traceidratio 0.25', []]);
    // A ratio the configuration sets leaves both variables unread.
    expect(resolveSettings(telemetry({ traces: { sampleRatio: 0.5 } }), { OTEL_TRACES_SAMPLER: 'xray' }).warnings).toEqual([]);
  });
});

describe('telemetry keys: timers', () => {
  it('refuses a metric interval of 0 and a timer longer than a timer can wait', () => {
    expect(() => telemetry({ metrics: { exportInterval: 0 } })).toThrow(/exportInterval[\s\S]*at least 1ms/);
    expect(() => telemetry({ shutdownTimeout: '30d' })).toThrow(/shutdownTimeout[\s\S]*at most 2147483647ms/);
    expect(telemetry({ shutdownTimeout: '24d', metrics: { exportInterval: 1 } })).toMatchObject({
      shutdownTimeout: 24 * 86_400_000,
      metrics: { exportInterval: 1 },
    });
  });
});

describe('the OTEL_* variables, end to end', () => {
  it('a real sidecar exports what they say: no traces, log records in batches of 2, metrics every 200 ms, no timeout; a bad one is warned about once', async () => {
    const receiver = await startOtlpReceiver();
    const upstream = await startServer((_req, res) => res.end('ok'));
    const dir = mkdtempSync(join(tmpdir(), 'otel-env-'));
    const config = join(dir, 'sidecar.yaml');
    // Spans would leave 50 ms after each request if traces were on.
    writeFileSync(config, ['telemetry:', `  endpoint: ${receiver.endpoint}`, '  errorLogInterval: 1h', '  traces: { scheduledDelay: 50ms }', ''].join('\n'));
    // Only these OTEL_* variables: the test runner's own are blanked.
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.keys(process.env)
        .filter((k) => k.startsWith('OTEL_'))
        .map((k) => [k, '']),
    );
    Object.assign(env, {
      SIDECAR_CONFIG: '',
      SIDECAR_LOG_LEVEL: '',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: '2',
      // Only full batches leave before shutdown.
      OTEL_BLRP_SCHEDULE_DELAY: '60000',
      OTEL_METRIC_EXPORT_INTERVAL: '200',
      OTEL_BSP_MAX_QUEUE_SIZE: 'plenty',
      // No limit: the spec's meaning of 0, which the exporters themselves would call invalid.
      OTEL_EXPORTER_OTLP_TIMEOUT: '0',
    });
    const proc = spawnCli(['run', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--upstream', upstream.url], env);
    try {
      const { listen } = await waitForStartup(proc);
      const lines = proc
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.find((l) => l.event_type === 'startup')?.telemetry).toMatch(/^otlp http:\/\/127\.0\.0\.1:\d+ \(metrics, logs; /);
      expect(lines.filter((l) => l.event_type === 'telemetry_config')).toEqual([
        expect.objectContaining({
          level: 'warn',
          code: 'SIDECAR_OTEL_ENV_INVALID',
          variable: 'OTEL_BSP_MAX_QUEUE_SIZE',
          value: 'plenty',
          using: '2048 (the default)',
          message: 'OTEL_BSP_MAX_QUEUE_SIZE="plenty": ignored, expected a positive integer; using 2048 (the default)',
        }),
      ]);
      expect(lines.filter((l) => l.event_type === 'telemetry_error')).toEqual([]);

      for (let i = 0; i < 5; i++) await (await request(`${listen}/r${i}`)).body.dump();
      const records = await receiver.waitFor(receiver.logs, (l) => l.length >= 4);
      expect(records.map((r) => r.attributes.path)).toEqual(['/r0', '/r1', '/r2', '/r3']);
      expect(receiver.requests.logs).toBe(2);
      // The default interval (15 s) would miss this wait (5 s).
      await receiver.waitFor(receiver.metrics, (m) => m.some((p) => p.name === 'agent_requests' && p.value === 5));
      expect(receiver.requests.traces).toBe(0);

      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      // The fifth record is flushed on the way out, alone.
      expect(receiver.logs().map((r) => r.attributes.path)).toEqual(['/r0', '/r1', '/r2', '/r3', '/r4']);
      expect(receiver.requests.logs).toBe(3);
      expect(receiver.requests.traces).toBe(0);
    } finally {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
      await upstream.close();
      await receiver.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
