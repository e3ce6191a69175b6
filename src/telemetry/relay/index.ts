import http from 'node:http';
import http2 from 'node:http2';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { Batcher } from '../otlp/batcher.ts';
import { createGrpcTransport } from '../otlp/transport.ts';
import { exporterOptions, type ExportConfig } from '../pipeline.ts';
import type { SideListener } from '../../core/index.ts';
import { SidecarError, type SidecarErrorCode } from '../../errors/index.ts';
import type { DropCounter } from '../signal.ts';
import { MalformedOtlp, rewriteExport, type RelayProtector, type RelaySignal, type Rewritten } from './rewrite.ts';

export { rewriteExport, MalformedOtlp, type RelayProtector, type RelaySignal } from './rewrite.ts';

// The OTLP relay: the agent's own traces, metrics and logs, taken over OTLP/gRPC and OTLP/HTTP
// (protobuf) on loopback, rewritten (rewrite.ts: the telemetry rule set, the sidecar's resource
// attributes) and forwarded to the sidecar's collector with the sidecar's endpoint, metadata and
// TLS. A request is answered once it is queued: the agent's exporter never waits for the
// collector. The queue is bounded in bytes; what does not fit, or cannot be exported, is
// dropped and counted (agent_telemetry_dropped_total{reason="relay_*"}) in the agent's own
// items (spans, log records, data points), and the agent is told how many in the response's
// partial_success, as OTLP asks.

export interface RelayConfig {
  enabled?: boolean | undefined;
  grpc?: string | false | undefined;
  http?: string | false | undefined;
  maxMessageBytes: number;
  queueBytes: number;
}

/**
 * Where the relay's receivers bind, or undefined when the relay is off: on when configured,
 * else when `run --` starts the agent (then on free loopback ports unless addresses are given;
 * otherwise OTLP's own 4317 and 4318 on loopback); a receiver set to false is not started.
 * Asked for with telemetry off, it stops the start.
 */
export function relayAddresses(r: RelayConfig, telemetryOn: boolean, runsAgent: boolean): { grpc?: string; http?: string } | undefined {
  if (!(r.enabled ?? runsAgent)) return undefined;
  if (!telemetryOn) {
    if (r.enabled === true)
      throw new SidecarError('SIDECAR_CONFIG_INVALID', {
        message: "telemetry.relay.enabled needs telemetry on: the relay forwards through the sidecar's exporters (telemetry.enabled, OTEL_SDK_DISABLED)",
      });
    return undefined;
  }
  const at = (v: string | false | undefined, port: number) => (v === false ? undefined : (v ?? `127.0.0.1:${runsAgent ? 0 : port}`));
  const out: { grpc?: string; http?: string } = {};
  const grpc = at(r.grpc, 4317);
  const http = at(r.http, 4318);
  if (grpc !== undefined) out.grpc = grpc;
  if (http !== undefined) out.http = http;
  return out;
}

/** A receiver, as the sidecar binds, drains and closes it. */
export interface RelayReceiver extends SideListener {
  readonly name: 'relay-grpc' | 'relay-http';
}

export interface Relay {
  readonly receivers: readonly RelayReceiver[];
  /** Sends what is queued (within telemetry.shutdownTimeout, which the caller applies) and stops. */
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
}

export interface RelayOptions {
  config: RelayConfig;
  /** Where each receiver binds; one left out is not started. */
  addresses: { grpc?: string | undefined; http?: string | undefined };
  exportConfig: ExportConfig;
  protect: RelayProtector | undefined;
  /** The sidecar's resource: its place attributes are added where the agent's lack them. */
  resource: Resource;
  drops: DropCounter;
  /** Where requests go once received (a worker thread's core); default: a core on this thread. */
  core?: RelayCore | undefined;
}

const SIGNALS: readonly RelaySignal[] = ['traces', 'metrics', 'logs'];
const HTTP_PATHS: Readonly<Record<string, RelaySignal>> = { '/v1/traces': 'traces', '/v1/metrics': 'metrics', '/v1/logs': 'logs' };
const GRPC_PATHS: Readonly<Record<string, RelaySignal>> = {
  '/opentelemetry.proto.collector.trace.v1.TraceService/Export': 'traces',
  '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export': 'metrics',
  '/opentelemetry.proto.collector.logs.v1.LogsService/Export': 'logs',
};
/** Resource attributes that say where the agent runs, which the sidecar beside it knows as well. */
const PLACE = /^(k8s|host|cloud|container|deployment\.environment)\b/;
/** Requests of one signal merged into one export at most (concatenated export requests are one request). */
const BATCH_REQUESTS = 64;
const BATCH_DELAY_MS = 200;
const EXPORTS_IN_FLIGHT = 2;
/** A request's body must have arrived within this long. */
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_STREAMS = 32;
const gunzipAsync = promisify(gunzip);

/** Why a relayed request was refused: an OTLP/HTTP status and a gRPC status code. */
class Refusal extends Error {
  readonly code: SidecarErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: number;
  constructor(code: SidecarErrorCode, httpStatus: number, grpcStatus: number, message: string) {
    super(message);
    this.code = code;
    this.httpStatus = httpStatus;
    this.grpcStatus = grpcStatus;
  }
}

const GRPC = { invalidArgument: 3, resourceExhausted: 8, unimplemented: 12, internal: 13 } as const;

/** Where a relayed request goes once received: rewritten, queued and exported, here or in a worker thread. */
export interface RelayCore {
  /** Rewrites and queues one request; how many of its items were dropped (0: all queued). Rejects with MalformedOtlp. */
  accept(signal: RelaySignal, body: Buffer): number | Promise<number>;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface RelayCoreOptions {
  queueBytes: number;
  exportConfig: ExportConfig;
  protect: RelayProtector | undefined;
  /** The sidecar's place attributes (placeOf), added where the agent's resource lacks them. */
  extra: Attributes;
  drops: DropCounter;
}

/** The sidecar's resource attributes that say where it runs, which the agent beside it shares. */
export function placeOf(resource: Resource): Attributes {
  const extra: Attributes = {};
  for (const [k, v] of Object.entries(resource.attributes)) if (PLACE.test(k) && v !== undefined) extra[k] = v;
  return extra;
}

/** The rewrite, the byte-bounded queues and the export, on the thread that calls it. */
export function createRelayCore(o: RelayCoreOptions): RelayCore {
  let pending = 0;
  const queues = new Map<RelaySignal, Batcher<Rewritten>>();
  const drops: DropCounter = {
    dropped: (signal, reason, count) => o.drops.dropped(signal, reason === 'queue_full' ? 'relay_queue_full' : 'relay_export_failed', count),
  };
  for (const signal of SIGNALS) {
    const transport = createGrpcTransport<Rewritten>(signal, exporterOptions(o.exportConfig, signal), (items) =>
      items.length === 1 ? items[0]!.bytes : Buffer.concat(items.map((i) => i.bytes)),
    );
    queues.set(
      signal,
      new Batcher<Rewritten>({
        signal,
        // Bounded by bytes below; the count bound only guards against a flood of empty requests.
        queueSize: 100_000,
        batchSize: BATCH_REQUESTS,
        scheduledDelay: BATCH_DELAY_MS,
        maxInFlight: EXPORTS_IN_FLIGHT,
        drops,
        weight: (r) => r.items,
        transport: {
          export(items, done) {
            for (const i of items) pending -= i.bytes.length;
            transport.export(items, done);
          },
          forceFlush: () => transport.forceFlush(),
          shutdown: () => transport.shutdown(),
        },
      }),
    );
  }
  return {
    accept(signal, body) {
      const r = rewriteExport(signal, body, o.protect, o.extra);
      if (r.items === 0) return 0;
      if (pending + r.bytes.length > o.queueBytes) {
        drops.dropped(signal, 'queue_full', r.items);
        return r.items;
      }
      pending += r.bytes.length;
      queues.get(signal)!.push(r);
      return 0;
    },
    async forceFlush() {
      await Promise.allSettled([...queues.values()].map((q) => q.forceFlush()));
    },
    async shutdown() {
      await Promise.allSettled([...queues.values()].map((q) => q.shutdown()));
    },
  };
}

export function createRelay(o: RelayOptions): Relay {
  const core =
    o.core ??
    createRelayCore({ queueBytes: o.config.queueBytes, exportConfig: o.exportConfig, protect: o.protect, extra: placeOf(o.resource), drops: o.drops });

  /** Rewrites and queues one request; returns how many of its items were dropped (0: all queued). */
  async function accept(signal: RelaySignal, body: Buffer): Promise<number> {
    try {
      return await core.accept(signal, body);
    } catch (err) {
      if (err instanceof MalformedOtlp)
        throw new Refusal('SIDECAR_RELAY_MALFORMED', 400, GRPC.invalidArgument, `not a valid OTLP ${signal} export request: ${err.message}`);
      throw err;
    }
  }

  async function body(compressed: boolean, bytes: Buffer): Promise<Buffer> {
    if (!compressed) return bytes;
    try {
      return await gunzipAsync(bytes, { maxOutputLength: o.config.maxMessageBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(o.config.maxMessageBytes);
      throw new Refusal('SIDECAR_RELAY_MALFORMED', 400, GRPC.invalidArgument, 'the gzip body cannot be decompressed');
    }
  }

  const receivers: RelayReceiver[] = [];
  if (o.addresses.http !== undefined) receivers.push(httpReceiver(o.addresses.http, o.config.maxMessageBytes, body, accept));
  if (o.addresses.grpc !== undefined) receivers.push(grpcReceiver(o.addresses.grpc, o.config.maxMessageBytes, body, accept));

  return {
    receivers,
    forceFlush: () => core.forceFlush(),
    shutdown: () => core.shutdown(),
  };
}

type Decompress = (compressed: boolean, bytes: Buffer) => Promise<Buffer>;
type Accept = (signal: RelaySignal, body: Buffer) => Promise<number>;

function tooLarge(max: number): Refusal {
  return new Refusal(
    'SIDECAR_RELAY_TOO_LARGE',
    413,
    GRPC.resourceExhausted,
    `the export request is larger than telemetry.relay.maxMessageBytes (${max} bytes)`,
  );
}

/** ExportXServiceResponse: empty, or partial_success { rejected = 1, error_message = 2 } when items were dropped. */
function exportResponse(rejected: number): Buffer {
  if (rejected === 0) return Buffer.alloc(0);
  const message = Buffer.from('agent-sidecar relay: queue full (telemetry.relay.queueBytes); dropped and counted');
  const inner = Buffer.concat([Buffer.from([0x08]), varint(rejected), Buffer.from([0x12]), varint(message.length), message]);
  return Buffer.concat([Buffer.from([0x0a]), varint(inner.length), inner]);
}

/** google.rpc.Status { code = 1, message = 2 }: the body of an OTLP/HTTP error. */
function statusMessage(grpcCode: number, message: string): Buffer {
  const m = Buffer.from(message);
  return Buffer.concat([Buffer.from([0x08]), varint(grpcCode), Buffer.from([0x12]), varint(m.length), m]);
}

function varint(v: number): Buffer {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Reads a stream whole, up to `max` bytes; past that, undefined (the rest is read and dropped). */
function readAll(stream: NodeJS.ReadableStream, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    let over = false;
    stream.on('data', (d: Buffer) => {
      if (over) return;
      n += d.length;
      if (n > max) {
        over = true;
        parts.length = 0;
        resolve(undefined);
        return;
      }
      parts.push(d);
    });
    stream.on('end', () => {
      if (!over) resolve(Buffer.concat(parts, n));
    });
    stream.on('error', reject);
  });
}

function httpReceiver(address: string, max: number, decompress: Decompress, accept: Accept): RelayReceiver {
  let active = 0;
  const idleWaiters: Array<() => void> = [];
  const refuse = (res: http.ServerResponse, r: Refusal) => {
    const body = statusMessage(r.grpcStatus, `${r.code}: ${r.message}`);
    res.writeHead(r.httpStatus, { 'content-type': 'application/x-protobuf', 'content-length': body.length, 'x-sidecar-error': r.code });
    res.end(body);
  };
  // Headers and the whole body within REQUEST_TIMEOUT_MS (headersTimeout may not exceed requestTimeout).
  const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, async (req, res) => {
    active++;
    try {
      const path = (req.url ?? '').split('?')[0]!;
      const signal = HTTP_PATHS[path];
      if (signal === undefined || req.method !== 'POST') {
        req.resume();
        return refuse(res, new Refusal('SIDECAR_RELAY_NOT_FOUND', 404, GRPC.unimplemented, 'the relay takes POST /v1/traces, /v1/metrics and /v1/logs'));
      }
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-protobuf') {
        req.resume();
        return refuse(
          res,
          new Refusal(
            'SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE',
            415,
            GRPC.invalidArgument,
            'the relay takes OTLP as protobuf (Content-Type: application/x-protobuf); set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf',
          ),
        );
      }
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') {
        req.resume();
        return refuse(
          res,
          new Refusal('SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE', 415, GRPC.invalidArgument, `Content-Encoding ${encoding}: the relay takes gzip or none`),
        );
      }
      const raw = await readAll(req, max);
      if (raw === undefined) {
        res.shouldKeepAlive = false;
        return refuse(res, tooLarge(max));
      }
      const rejected = await accept(signal, await decompress(encoding === 'gzip', raw));
      const out = exportResponse(rejected);
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': out.length });
      res.end(out);
    } catch (err) {
      if (err instanceof Refusal) refuse(res, err);
      else refuse(res, new Refusal('SIDECAR_INTERNAL', 500, GRPC.internal, 'the relay failed on this request'));
    } finally {
      active--;
      if (active === 0) for (const w of idleWaiters.splice(0)) w();
    }
  });
  return {
    name: 'relay-http',
    address,
    server,
    describe: 'OTLP/HTTP relay (protobuf)',
    stopAccepting: () => {
      server.close();
      server.closeIdleConnections();
    },
    idle: (timeout) => waitIdle(() => active === 0, idleWaiters, timeout),
    destroyAll: () => server.closeAllConnections(),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function grpcReceiver(address: string, max: number, decompress: Decompress, accept: Accept): RelayReceiver {
  let active = 0;
  const idleWaiters: Array<() => void> = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  // Requests in flight are held whole: a session may have this many open at once.
  const server = http2.createServer({ settings: { maxConcurrentStreams: MAX_STREAMS } });
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const fail = (stream: http2.ServerHttp2Stream, code: number, message: string) => {
    if (stream.destroyed) return;
    // Trailers-only: the status in the one HEADERS frame.
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) },
      { endStream: true },
    );
  };
  server.on('stream', (stream, headers) => {
    active++;
    // A request that stops arriving is given up, as the HTTP receiver's requestTimeout does.
    stream.setTimeout(REQUEST_TIMEOUT_MS, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    const done = () => {
      active--;
      if (active === 0) for (const w of idleWaiters.splice(0)) w();
    };
    void (async () => {
      const signal = GRPC_PATHS[String(headers[':path'])];
      if (signal === undefined) {
        stream.resume();
        return fail(stream, GRPC.unimplemented, `SIDECAR_RELAY_NOT_FOUND: the relay serves the OTLP Export methods, not ${String(headers[':path'])}`);
      }
      if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
        stream.resume();
        return fail(stream, GRPC.invalidArgument, 'SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE: expected application/grpc');
      }
      // One message, framed: a compressed flag, a 4-byte length, the bytes.
      const raw = await readAll(stream, max + 5);
      if (raw === undefined) return fail(stream, GRPC.resourceExhausted, `SIDECAR_RELAY_TOO_LARGE: ${tooLarge(max).message}`);
      if (raw.length < 5 || raw.readUInt32BE(1) !== raw.length - 5) {
        return fail(stream, GRPC.invalidArgument, 'SIDECAR_RELAY_MALFORMED: expected exactly one length-prefixed gRPC message');
      }
      const compressed = raw[0] === 1;
      if (compressed && String(headers['grpc-encoding'] ?? '') !== 'gzip') {
        return fail(stream, GRPC.unimplemented, 'SIDECAR_RELAY_UNSUPPORTED_MEDIA_TYPE: the relay takes gzip or no compression');
      }
      try {
        const rejected = await accept(signal, await decompress(compressed, raw.subarray(5)));
        const out = exportResponse(rejected);
        const frame = Buffer.alloc(5 + out.length);
        frame.writeUInt32BE(out.length, 1);
        out.copy(frame, 5);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame);
      } catch (err) {
        if (err instanceof Refusal) fail(stream, err.grpcStatus, `${err.code}: ${err.message}`);
        else fail(stream, GRPC.internal, 'SIDECAR_INTERNAL: the relay failed on this request');
      }
    })()
      .catch(() => fail(stream, GRPC.internal, 'SIDECAR_INTERNAL: the relay failed on this request'))
      .finally(done);
  });
  return {
    name: 'relay-grpc',
    address,
    server,
    describe: 'OTLP/gRPC relay',
    stopAccepting: () => {
      server.close();
      for (const s of sessions) s.close();
    },
    idle: (timeout) => waitIdle(() => active === 0, idleWaiters, timeout),
    destroyAll: () => {
      for (const s of sessions) s.destroy();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function waitIdle(isIdle: () => boolean, waiters: Array<() => void>, timeout: number | undefined): Promise<boolean> {
  if (isIdle()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = timeout === undefined ? undefined : setTimeout(() => resolve(false), timeout);
    timer?.unref();
    waiters.push(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
