/**
 * A real OTLP/gRPC receiver for tests: a @grpc/grpc-js server that registers the three
 * collector services, decodes the request bytes with the protobufjs code generated from
 * the official opentelemetry-proto definitions and answers with an encoded
 * Export*ServiceResponse. Decoded data is flattened into plain shapes for assertions.
 *
 * @example
 *   const receiver = await startOtlpReceiver();
 *   const exporter = new OTLPTraceExporter({ url: receiver.endpoint });
 *   // ... produce spans, flush ...
 *   const [span] = await receiver.waitFor(receiver.spans, (s) => s.some((x) => x.name === 'GET /'));
 *   await receiver.stop();
 */
import { EventEmitter, once } from 'node:events';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';

// ---------------------------------------------------------------------------------------
// Generated protobuf code (CommonJS, untyped: its root.d.ts only declares a Root).

interface ProtoMessageType {
  decode(reader: Uint8Array): object;
  encode(message: object): { finish(): Uint8Array };
  toObject(message: object, options: Record<string, unknown>): Record<string, unknown>;
}

interface CollectorPackage {
  [type: string]: ProtoMessageType;
}

const require = createRequire(import.meta.url);
const root = require('otlp-proto-root/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: Record<'trace' | 'metrics' | 'logs', { v1: CollectorPackage }> } };
};
const collector = root.opentelemetry.proto.collector;

/** 64-bit integers as decimal strings (no precision loss), bytes as Buffers, enums as numbers. */
const TO_OBJECT = { longs: String, enums: Number, bytes: Buffer, defaults: true, arrays: true, oneofs: true } as const;

// ---------------------------------------------------------------------------------------
// Shapes of `toObject` output (field names from opentelemetry-proto, camelCased).

type Long = string;
interface PbAnyValue {
  value?: 'stringValue' | 'boolValue' | 'intValue' | 'doubleValue' | 'arrayValue' | 'kvlistValue' | 'bytesValue';
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Long;
  doubleValue?: number;
  arrayValue?: { values: PbAnyValue[] };
  kvlistValue?: { values: PbKeyValue[] };
  bytesValue?: Uint8Array;
}
interface PbKeyValue {
  key: string;
  value: PbAnyValue | null;
}
interface PbResource {
  attributes: PbKeyValue[];
}
interface PbScope {
  name: string;
  version: string;
  attributes: PbKeyValue[];
}
interface PbSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState: string;
  parentSpanId: Uint8Array;
  name: string;
  kind: number;
  startTimeUnixNano: Long;
  endTimeUnixNano: Long;
  attributes: PbKeyValue[];
  events: Array<{ timeUnixNano: Long; name: string; attributes: PbKeyValue[] }>;
  links: Array<{ traceId: Uint8Array; spanId: Uint8Array; attributes: PbKeyValue[] }>;
  status: { code: number; message: string } | null;
}
interface PbTraceRequest {
  resourceSpans: Array<{ resource: PbResource | null; scopeSpans: Array<{ scope: PbScope | null; spans: PbSpan[] }> }>;
}
interface PbNumberPoint {
  attributes: PbKeyValue[];
  startTimeUnixNano: Long;
  timeUnixNano: Long;
  value?: 'asDouble' | 'asInt';
  asDouble?: number;
  asInt?: Long;
}
interface PbHistogramPoint {
  attributes: PbKeyValue[];
  startTimeUnixNano: Long;
  timeUnixNano: Long;
  count: Long;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts: Long[];
  explicitBounds: number[];
}
interface PbExpHistogramPoint {
  attributes: PbKeyValue[];
  startTimeUnixNano: Long;
  timeUnixNano: Long;
  count: Long;
  sum?: number;
  min?: number;
  max?: number;
  scale: number;
  zeroCount: Long;
  positive: { offset: number; bucketCounts: Long[] } | null;
  negative: { offset: number; bucketCounts: Long[] } | null;
}
interface PbSummaryPoint {
  attributes: PbKeyValue[];
  startTimeUnixNano: Long;
  timeUnixNano: Long;
  count: Long;
  sum: number;
  quantileValues: Array<{ quantile: number; value: number }>;
}
interface PbMetric {
  name: string;
  description: string;
  unit: string;
  data?: MetricType;
  gauge?: { dataPoints: PbNumberPoint[] };
  sum?: { dataPoints: PbNumberPoint[]; aggregationTemporality: number; isMonotonic: boolean };
  histogram?: { dataPoints: PbHistogramPoint[]; aggregationTemporality: number };
  exponentialHistogram?: { dataPoints: PbExpHistogramPoint[]; aggregationTemporality: number };
  summary?: { dataPoints: PbSummaryPoint[] };
}
interface PbMetricsRequest {
  resourceMetrics: Array<{ resource: PbResource | null; scopeMetrics: Array<{ scope: PbScope | null; metrics: PbMetric[] }> }>;
}
interface PbLogRecord {
  timeUnixNano: Long;
  observedTimeUnixNano: Long;
  severityNumber: number;
  severityText: string;
  body: PbAnyValue | null;
  attributes: PbKeyValue[];
  flags: number;
  traceId: Uint8Array;
  spanId: Uint8Array;
}
interface PbLogsRequest {
  resourceLogs: Array<{ resource: PbResource | null; scopeLogs: Array<{ scope: PbScope | null; logRecords: PbLogRecord[] }> }>;
}

// ---------------------------------------------------------------------------------------
// Friendly shapes.

/** An OTLP AnyValue as plain JS. 64-bit ints are numbers when safe, bigint otherwise. */
export type PlainValue = string | number | bigint | boolean | Uint8Array | null | PlainValue[] | { [key: string]: PlainValue };
export type PlainAttributes = Record<string, PlainValue>;

export interface DecodedScope {
  name: string;
  version: string;
  attributes: PlainAttributes;
}

export const SPAN_KIND_NAMES = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const;
export type SpanKindName = (typeof SPAN_KIND_NAMES)[number];
export const STATUS_CODE_NAMES = ['UNSET', 'OK', 'ERROR'] as const;
export type StatusCodeName = (typeof STATUS_CODE_NAMES)[number];
export const TEMPORALITY_NAMES = ['UNSPECIFIED', 'DELTA', 'CUMULATIVE'] as const;
export type TemporalityName = (typeof TEMPORALITY_NAMES)[number];

export interface DecodedSpan {
  /** Lowercase hex, 32 chars. */
  traceId: string;
  /** Lowercase hex, 16 chars. */
  spanId: string;
  /** Lowercase hex, or '' for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP SpanKind number (note: OTLP numbers are the API's SpanKind + 1). */
  kind: number;
  kindName: SpanKindName;
  attributes: PlainAttributes;
  events: Array<{ name: string; timeUnixNano: string; attributes: PlainAttributes }>;
  links: Array<{ traceId: string; spanId: string; attributes: PlainAttributes }>;
  status: { code: number; codeName: StatusCodeName; message: string };
  resource: PlainAttributes;
  scope: DecodedScope;
  /** Decimal strings: nanoseconds since the epoch do not fit a double. */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

export type MetricType = 'gauge' | 'sum' | 'histogram' | 'exponentialHistogram' | 'summary';

/** One data point of one metric, with its metric's descriptor. */
export interface DecodedMetric {
  name: string;
  description: string;
  unit: string;
  type: MetricType;
  /** Sums only. */
  isMonotonic?: boolean;
  /** Sums and histograms only. */
  temporality?: TemporalityName;
  attributes: PlainAttributes;
  startTimeUnixNano: string;
  timeUnixNano: string;
  /** Sums and gauges. */
  value?: number;
  /** Histograms, exponential histograms and summaries. */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  /** Explicit-bucket histograms: bucketCounts.length === explicitBounds.length + 1. */
  bucketCounts?: number[];
  explicitBounds?: number[];
  /** Exponential histograms. */
  scale?: number;
  zeroCount?: number;
  positive?: { offset: number; bucketCounts: number[] };
  negative?: { offset: number; bucketCounts: number[] };
  /** Summaries. */
  quantiles?: Array<{ quantile: number; value: number }>;
  resource: PlainAttributes;
  scope: DecodedScope;
}

export interface DecodedLogRecord {
  body: PlainValue | undefined;
  severityNumber: number;
  severityText: string;
  attributes: PlainAttributes;
  /** Hex, or '' when the record was emitted outside a span. */
  traceId: string;
  spanId: string;
  flags: number;
  timeUnixNano: string;
  observedTimeUnixNano: string;
  resource: PlainAttributes;
  scope: DecodedScope;
}

// ---------------------------------------------------------------------------------------
// Conversion.

const hex = (bytes: Uint8Array | null | undefined): string => (bytes && bytes.length > 0 ? Buffer.from(bytes).toString('hex') : '');

function int64(value: Long): number | bigint {
  const big = BigInt(value);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** Counts are uint64 on the wire; a test never sees one above 2^53. */
const count = (value: Long): number => Number(value);

export function plainValue(any: PbAnyValue | null | undefined): PlainValue | undefined {
  if (!any || any.value === undefined) return undefined;
  switch (any.value) {
    case 'stringValue':
      return any.stringValue!;
    case 'boolValue':
      return any.boolValue!;
    case 'intValue':
      return int64(any.intValue!);
    case 'doubleValue':
      return any.doubleValue!;
    case 'bytesValue':
      return any.bytesValue!;
    case 'arrayValue':
      return (any.arrayValue?.values ?? []).map((v) => plainValue(v) ?? null);
    case 'kvlistValue':
      return plainAttributes(any.kvlistValue?.values);
  }
}

export function plainAttributes(list: PbKeyValue[] | null | undefined): PlainAttributes {
  const out: PlainAttributes = {};
  for (const { key, value } of list ?? []) out[key] = plainValue(value) ?? null;
  return out;
}

const scopeOf = (scope: PbScope | null): DecodedScope => ({
  name: scope?.name ?? '',
  version: scope?.version ?? '',
  attributes: plainAttributes(scope?.attributes),
});

function flattenTraces(request: PbTraceRequest): DecodedSpan[] {
  const out: DecodedSpan[] = [];
  for (const rs of request.resourceSpans) {
    const resource = plainAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans) {
      const scope = scopeOf(ss.scope);
      for (const span of ss.spans) {
        const statusCode = span.status?.code ?? 0;
        out.push({
          traceId: hex(span.traceId),
          spanId: hex(span.spanId),
          parentSpanId: hex(span.parentSpanId),
          traceState: span.traceState,
          name: span.name,
          kind: span.kind,
          kindName: SPAN_KIND_NAMES[span.kind] ?? 'UNSPECIFIED',
          attributes: plainAttributes(span.attributes),
          events: span.events.map((e) => ({ name: e.name, timeUnixNano: e.timeUnixNano, attributes: plainAttributes(e.attributes) })),
          links: span.links.map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId), attributes: plainAttributes(l.attributes) })),
          status: { code: statusCode, codeName: STATUS_CODE_NAMES[statusCode] ?? 'UNSET', message: span.status?.message ?? '' },
          resource,
          scope,
          startTimeUnixNano: span.startTimeUnixNano,
          endTimeUnixNano: span.endTimeUnixNano,
        });
      }
    }
  }
  return out;
}

function numberValue(point: PbNumberPoint): number | undefined {
  if (point.value === 'asDouble') return point.asDouble;
  if (point.value === 'asInt') return Number(point.asInt);
  return undefined;
}

const buckets = (b: { offset: number; bucketCounts: Long[] } | null) => ({ offset: b?.offset ?? 0, bucketCounts: (b?.bucketCounts ?? []).map(count) });

function flattenMetrics(request: PbMetricsRequest): DecodedMetric[] {
  const out: DecodedMetric[] = [];
  for (const rm of request.resourceMetrics) {
    const resource = plainAttributes(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics) {
      const scope = scopeOf(sm.scope);
      for (const metric of sm.metrics) {
        const type = metric.data;
        if (type === undefined) continue;
        const base = { name: metric.name, description: metric.description, unit: metric.unit, type, resource, scope };
        const point = (p: { attributes: PbKeyValue[]; startTimeUnixNano: Long; timeUnixNano: Long }) => ({
          ...base,
          attributes: plainAttributes(p.attributes),
          startTimeUnixNano: p.startTimeUnixNano,
          timeUnixNano: p.timeUnixNano,
        });
        switch (type) {
          case 'gauge':
            for (const p of metric.gauge!.dataPoints) out.push({ ...point(p), value: numberValue(p) });
            break;
          case 'sum': {
            const { dataPoints, aggregationTemporality, isMonotonic } = metric.sum!;
            const temporality = TEMPORALITY_NAMES[aggregationTemporality] ?? 'UNSPECIFIED';
            for (const p of dataPoints) out.push({ ...point(p), isMonotonic, temporality, value: numberValue(p) });
            break;
          }
          case 'histogram': {
            const { dataPoints, aggregationTemporality } = metric.histogram!;
            const temporality = TEMPORALITY_NAMES[aggregationTemporality] ?? 'UNSPECIFIED';
            for (const p of dataPoints)
              out.push({
                ...point(p),
                temporality,
                count: count(p.count),
                sum: p.sum,
                min: p.min,
                max: p.max,
                bucketCounts: p.bucketCounts.map(count),
                explicitBounds: p.explicitBounds,
              });
            break;
          }
          case 'exponentialHistogram': {
            const { dataPoints, aggregationTemporality } = metric.exponentialHistogram!;
            const temporality = TEMPORALITY_NAMES[aggregationTemporality] ?? 'UNSPECIFIED';
            for (const p of dataPoints)
              out.push({
                ...point(p),
                temporality,
                count: count(p.count),
                sum: p.sum,
                min: p.min,
                max: p.max,
                scale: p.scale,
                zeroCount: count(p.zeroCount),
                positive: buckets(p.positive),
                negative: buckets(p.negative),
              });
            break;
          }
          case 'summary':
            for (const p of metric.summary!.dataPoints)
              out.push({ ...point(p), count: count(p.count), sum: p.sum, quantiles: p.quantileValues.map(({ quantile, value }) => ({ quantile, value })) });
            break;
        }
      }
    }
  }
  return out;
}

function flattenLogs(request: PbLogsRequest): DecodedLogRecord[] {
  const out: DecodedLogRecord[] = [];
  for (const rl of request.resourceLogs) {
    const resource = plainAttributes(rl.resource?.attributes);
    for (const sl of rl.scopeLogs) {
      const scope = scopeOf(sl.scope);
      for (const record of sl.logRecords) {
        out.push({
          body: plainValue(record.body),
          severityNumber: record.severityNumber,
          severityText: record.severityText,
          attributes: plainAttributes(record.attributes),
          traceId: hex(record.traceId),
          spanId: hex(record.spanId),
          flags: record.flags,
          timeUnixNano: record.timeUnixNano,
          observedTimeUnixNano: record.observedTimeUnixNano,
          resource,
          scope,
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Service definitions.

type Signal = 'traces' | 'metrics' | 'logs';

const SERVICES = {
  traces: { pkg: 'trace', service: 'TraceService', request: 'ExportTraceServiceRequest', response: 'ExportTraceServiceResponse' },
  metrics: { pkg: 'metrics', service: 'MetricsService', request: 'ExportMetricsServiceRequest', response: 'ExportMetricsServiceResponse' },
  logs: { pkg: 'logs', service: 'LogsService', request: 'ExportLogsServiceRequest', response: 'ExportLogsServiceResponse' },
} as const;

function serviceDefinition(signal: Signal, raw: boolean): grpc.ServiceDefinition {
  const { pkg, service, request, response } = SERVICES[signal];
  const types = collector[pkg].v1;
  const Req = types[request]!;
  const Res = types[response]!;
  const method: grpc.MethodDefinition<Record<string, unknown> | Buffer, object> = {
    path: `/opentelemetry.proto.collector.${pkg}.v1.${service}/Export`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (message) => (Buffer.isBuffer(message) ? message : Buffer.from(Req.encode(message).finish())),
    requestDeserialize: raw ? (bytes) => bytes : (bytes) => Req.toObject(Req.decode(bytes), TO_OBJECT),
    responseSerialize: (message) => Buffer.from(Res.encode(message).finish()),
    responseDeserialize: (bytes) => Res.decode(bytes),
    originalName: 'export',
  };
  return { Export: method };
}

// ---------------------------------------------------------------------------------------
// Counting without decoding (for load: a full decode costs more than the export it checks).

/** Calls `fn` for each field of the message in buf[start, end): its number, wire type, where its value (a length prefix, for wire type 2) starts and where it ends. */
function eachField(buf: Buffer, start: number, end: number, fn: (field: number, wire: number, from: number, to: number) => void): void {
  let p = start;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[p++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (p < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    const from = p;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const length = varint();
      p += length;
    } else throw new Error(`unsupported wire type ${wire} in field ${field}`);
    fn(field, wire, from, p);
  }
}

/**
 * Items (spans or log records) in an ExportTraceServiceRequest or ExportLogsServiceRequest:
 * request.1 (resource_*) -> .2 (scope_*) -> .2 (span / log record). Items whose resource
 * bytes lack `mark` are also counted as foreign.
 */
export function countItems(buf: Buffer, mark: Buffer): { items: number; foreign: number } {
  let items = 0;
  let foreign = 0;
  eachField(buf, 0, buf.length, (field, wire, from, to) => {
    if (field !== 1 || wire !== 2) return;
    let marked = false;
    let n = 0;
    eachField(buf, lengthEnd(buf, from), to, (f2, w2, s2, e2) => {
      if (w2 !== 2) return;
      if (f2 === 1) marked = buf.subarray(lengthEnd(buf, s2), e2).includes(mark);
      else if (f2 === 2) eachField(buf, lengthEnd(buf, s2), e2, (f3, w3) => void (f3 === 2 && w3 === 2 && n++));
    });
    items += n;
    if (!marked) foreign += n;
  });
  return { items, foreign };
}

/** Where the bytes of a length-delimited field start, given where its length varint starts. */
function lengthEnd(buf: Buffer, at: number): number {
  while (buf[at]! >= 0x80) at++;
  return at + 1;
}

// ---------------------------------------------------------------------------------------
// The receiver.

export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT`, the form the OTLP gRPC exporters take as `url`. */
  readonly endpoint: string;
  readonly port: number;
  spans(): DecodedSpan[];
  metrics(): DecodedMetric[];
  logs(): DecodedLogRecord[];
  /** Export calls received per signal, including those answered with the configured failure. */
  readonly requests: { traces: number; metrics: number; logs: number };
  /**
   * Resolves with `pick()` once `predicate(pick())` holds; rejects after `timeoutMs` (default 5000).
   * @example await receiver.waitFor(receiver.spans, (s) => s.length >= 2)
   */
  waitFor<T>(pick: () => T[], predicate: (items: T[]) => boolean, timeoutMs?: number): Promise<T[]>;
  /** Closes the listener and every connection at once (a collector crash). Safe to call twice. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Answers every Export with this gRPC status (e.g. UNAVAILABLE) until set back to undefined. Refused data is not kept. */
  setFailure(code: grpc.status | undefined): void;
  /** Waits this long before answering each Export (a slow collector). */
  setDelay(ms: number): void;
  /** With `countOnly`: traces and logs received (spans, log records, and those of unmarked resources). */
  readonly counted: { spans: number; logRecords: number; foreign: number };
  /** Forgets received data, counts and request counts. */
  clear(): void;
}

export interface ReceiverOptions {
  port?: number;
  /**
   * Traces and logs are counted, not decoded (`counted`), for load tests: a protobufjs decode
   * costs more CPU than the export it checks. Items of resources without `mark` count as foreign.
   */
  countOnly?: { mark: string };
}

export async function startOtlpReceiver(options: ReceiverOptions = {}): Promise<OtlpReceiver> {
  const received = { spans: [] as DecodedSpan[], metrics: [] as DecodedMetric[], logs: [] as DecodedLogRecord[] };
  const counted = { spans: 0, logRecords: 0, foreign: 0 };
  const mark = options.countOnly === undefined ? undefined : Buffer.from(options.countOnly.mark);
  const tally = (key: 'spans' | 'logRecords') => (bytes: Buffer) => {
    const c = countItems(bytes, mark!);
    counted[key] += c.items;
    counted.foreign += c.foreign;
  };
  const requests = { traces: 0, metrics: 0, logs: 0 };
  const changed = new EventEmitter();
  const pending = new Set<NodeJS.Timeout>();
  let failure: grpc.status | undefined;
  let delay = 0;
  let server: grpc.Server | undefined;
  let port = options.port ?? 0;

  function handler<Req>(signal: Signal, accept: (request: Req) => void): grpc.handleUnaryCall<Req, object> {
    return (call, callback) => {
      requests[signal]++;
      const answer = () => {
        // The client gave up (deadline or cancel): nothing was acknowledged, so nothing is kept.
        if (call.cancelled) return;
        if (failure !== undefined) {
          callback({ code: failure, details: `OTLP receiver refuses ${signal} (test failure mode)` });
        } else {
          accept(call.request);
          callback(null, {});
        }
        changed.emit('change');
      };
      if (delay <= 0) return answer();
      const timer = setTimeout(() => {
        pending.delete(timer);
        answer();
      }, delay);
      pending.add(timer);
    };
  }

  async function start(): Promise<void> {
    if (server) return;
    const s = new grpc.Server();
    if (mark !== undefined) {
      s.addService(serviceDefinition('traces', true), { Export: handler<Buffer>('traces', tally('spans')) });
      s.addService(serviceDefinition('logs', true), { Export: handler<Buffer>('logs', tally('logRecords')) });
    } else {
      s.addService(serviceDefinition('traces', false), { Export: handler<PbTraceRequest>('traces', (r) => received.spans.push(...flattenTraces(r))) });
      s.addService(serviceDefinition('logs', false), { Export: handler<PbLogsRequest>('logs', (r) => received.logs.push(...flattenLogs(r))) });
    }
    s.addService(serviceDefinition('metrics', false), { Export: handler<PbMetricsRequest>('metrics', (r) => received.metrics.push(...flattenMetrics(r))) });
    port = await new Promise<number>((resolve, reject) =>
      s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    server = s;
  }

  async function stop(): Promise<void> {
    for (const timer of pending) clearTimeout(timer);
    pending.clear();
    server?.forceShutdown();
    server = undefined;
  }

  async function waitFor<T>(pick: () => T[], predicate: (items: T[]) => boolean, timeoutMs = 5000): Promise<T[]> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      for (;;) {
        const items = pick();
        if (predicate(items)) return items;
        await once(changed, 'change', { signal: ac.signal });
      }
    } catch (error) {
      if (!ac.signal.aborted) throw error;
      const items = pick();
      if (predicate(items)) return items;
      throw new Error(`OTLP receiver: condition not met after ${timeoutMs}ms; have ${items.length} item(s), requests ${JSON.stringify(requests)}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  await start();

  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    spans: () => [...received.spans],
    metrics: () => [...received.metrics],
    logs: () => [...received.logs],
    requests,
    counted,
    waitFor,
    stop,
    start,
    setFailure: (code) => void (failure = code),
    setDelay: (ms) => void (delay = ms),
    clear() {
      received.spans.length = 0;
      received.metrics.length = 0;
      received.logs.length = 0;
      requests.traces = requests.metrics = requests.logs = 0;
      counted.spans = counted.logRecords = counted.foreign = 0;
      changed.emit('change');
    },
  };
}

/** Decodes an ExportLogsServiceRequest exactly as the receiver does (for encoder tests). */
export function decodeLogsRequest(bytes: Uint8Array): DecodedLogRecord[] {
  const Req = collector.logs.v1.ExportLogsServiceRequest!;
  return flattenLogs(Req.toObject(Req.decode(bytes), TO_OBJECT) as unknown as PbLogsRequest);
}

/** Decodes an ExportTraceServiceRequest exactly as the receiver does (for encoder tests). */
export function decodeTraceRequest(bytes: Uint8Array): DecodedSpan[] {
  const Req = collector.trace.v1.ExportTraceServiceRequest!;
  return flattenTraces(Req.toObject(Req.decode(bytes), TO_OBJECT) as unknown as PbTraceRequest);
}

/**
 * Encodes an ExportTraceServiceRequest given in the proto's field names (camelCased; ids as
 * Buffers, times as decimal strings), for tests that send OTLP themselves.
 */
export function encodeTraceRequest(request: object): Uint8Array {
  return collector.trace.v1.ExportTraceServiceRequest!.encode(request).finish();
}
