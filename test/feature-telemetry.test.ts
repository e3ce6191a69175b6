import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { createMemoryAudit, instrumentAudit } from '../src/audit/index.ts';
import type { Principal } from '../src/auth/principal.ts';
import { createLogger } from '../src/log/index.ts';
import { createMemoryRevocationStore, createRevocationCheck, type RevocationStore } from '../src/revocation/index.ts';
import { observeCaches, type LogEntry } from '../src/telemetry/index.ts';
import { captureLogs } from './helpers.ts';

/** A pull reader: the test collects when it wants to look. */
class Reader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function meterAndReader() {
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  return { meter: provider.getMeter('test'), reader };
}

/** Each data point of `name` as [attributes, value]. */
async function points(reader: MetricReader, name: string): Promise<Array<[Attributes, number]>> {
  const { resourceMetrics } = await reader.collect();
  const metrics: MetricData[] = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name);
  return metrics.flatMap((m) => m.dataPoints.map((dp) => [dp.attributes, dp.value as number] as [Attributes, number]));
}

const logger = createLogger('info', captureLogs().stream);
const principal = (): Principal => ({
  subject: `user-${randomUUID()}`,
  tokenId: randomUUID(),
  issuedAt: Math.floor(Date.now() / 1000),
  roles: [],
  scopes: [],
  method: 'jwt',
});

describe('the revocation check counts itself on the meter it is given', () => {
  it('valid, revoked, and a store that cannot answer: refused (closed) or let through unchecked (open)', async () => {
    const { meter, reader } = meterAndReader();
    const store = createMemoryRevocationStore();
    const down: RevocationStore = { ...store, isRevoked: () => Promise.reject(new Error('connection refused')) };
    const check = createRevocationCheck(store, { failMode: 'closed', logger, meter });
    const p = principal();
    await check(p);
    await check(principal());
    await store.revokeToken(p.tokenId!, Math.floor(Date.now() / 1000) + 600);
    await expect(check(p)).rejects.toMatchObject({ code: 'SIDECAR_TOKEN_REVOKED' });
    await expect(createRevocationCheck(down, { failMode: 'closed', logger, meter })(p)).rejects.toMatchObject({ code: 'SIDECAR_STORE_UNAVAILABLE' });
    const open = createRevocationCheck(down, { failMode: 'open', logger, meter, audit: createMemoryAudit() });
    await open(p);
    expect(open.stats.failedOpen).toBe(1);
    const byResult = Object.fromEntries((await points(reader, 'agent_revocation_checks')).map(([a, v]) => [a.result, v]));
    // A check let through unchecked returned, so it is valid too; skipped says it went unchecked.
    expect(byResult).toEqual({ valid: 3, revoked: 1, store_unavailable: 1, skipped_store_unavailable: 1 });
  });

  it('without a meter, counts nothing and checks the same', async () => {
    const check = createRevocationCheck(createMemoryRevocationStore(), { failMode: 'closed', logger });
    await expect(check(principal())).resolves.toBeUndefined();
    expect(check.stats).toEqual({ failedOpen: 0, failedClosed: 0 });
  });
});

describe('audit events as telemetry', () => {
  it('without a meter, the events go to the base sink alone', () => {
    const base = createMemoryAudit();
    expect(instrumentAudit(base, { meter: undefined, agentType: 'a' })).toBe(base);
    expect(() =>
      instrumentAudit(undefined, { meter: undefined, agentType: 'a' }).emit({ event_type: 'sensitive_operation', user_id: 'u', operation: 'x', details: {} }),
    ).not.toThrow();
  });

  it('counts outcomes and decisions, adds span events to the request span, and writes log records in its trace', async () => {
    const { meter, reader } = meterAndReader();
    const exporter = new InMemorySpanExporter();
    const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer('test');
    const span = tracer.startSpan('GET /x');
    const entries: LogEntry[] = [];
    const base = createMemoryAudit();
    const audit = instrumentAudit(base, {
      meter,
      agentType: 'support-agent',
      logs: { push: (e) => void entries.push(e) },
      spans: { spanOf: (id) => (id === 'r1' ? span : undefined) },
    });
    audit.emit({ event_type: 'authentication', success: true, auth_method: 'jwt', ip_address: '127.0.0.1', request_id: 'r1' });
    audit.emit({
      event_type: 'authorization',
      action: 'view:agent',
      resource: 'GET /x',
      allowed: false,
      dry_run: true,
      reason: 'SIDECAR_FORBIDDEN',
      request_id: 'r1',
    });
    audit.emit({ event_type: 'authentication', success: false, reason: 'SIDECAR_TOKEN_EXPIRED', ip_address: '127.0.0.1', request_id: 'other' });
    span.end();

    expect(base.events).toHaveLength(3);
    expect(await points(reader, 'agent_auth_attempts')).toEqual(
      expect.arrayContaining([
        [{ agent_type: 'support-agent', outcome: 'success', auth_method: 'jwt', reason: 'ok' }, 1],
        [{ agent_type: 'support-agent', outcome: 'failure', auth_method: 'none', reason: 'SIDECAR_TOKEN_EXPIRED' }, 1],
      ]),
    );
    expect(await points(reader, 'agent_authorization_decisions')).toEqual([
      [{ agent_type: 'support-agent', decision: 'dry_run_denied', reason: 'SIDECAR_FORBIDDEN' }, 1],
    ]);
    expect(exporter.getFinishedSpans()[0]!.events.map((e) => e.name)).toEqual(['authenticated', 'authorization dry_run_denied']);
    expect(entries.map((e) => [e.eventName, e.traceId])).toEqual([
      ['audit.authentication', span.spanContext().traceId],
      ['audit.authorization', span.spanContext().traceId],
      ['audit.authentication', ''],
    ]);
  });
});

describe('observeCaches', () => {
  it('reports each cache by cache_type when metrics are collected, and leaves out a cache that does not exist', async () => {
    const { meter, reader } = meterAndReader();
    const token = { hits: 0, misses: 0 };
    observeCaches(meter, { token: () => token, absent: () => undefined });
    token.hits = 5;
    token.misses = 2;
    expect(await points(reader, 'cache_hits')).toEqual([[{ cache_type: 'token' }, 5]]);
    expect(await points(reader, 'cache_misses')).toEqual([[{ cache_type: 'token' }, 2]]);
  });
});

describe('the telemetry folder', () => {
  it('imports no feature: features instrument themselves with its meter, tracer and log sink', () => {
    const dir = fileURLToPath(new URL('../src/telemetry/', import.meta.url));
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const features = /from '(?:\.\.\/)+(audit|revocation|protect|auth|access|egress)\//;
    expect(files.filter((f) => features.test(readFileSync(join(dir, f), 'utf8')))).toEqual([]);
  });
});
