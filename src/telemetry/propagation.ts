import { defaultTextMapGetter, ROOT_CONTEXT, trace, type Context, type Span, type TextMapSetter } from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

// W3C trace context on the sidecar's outbound hops (LLM providers, MCP servers, A2A peers):
// a CLIENT span continues the agent's traceparent and replaces it with its own.

const propagator = new W3CTraceContextPropagator();
const pairSetter: TextMapSetter<string[]> = {
  set(carrier, key, value) {
    carrier.push(key, value);
  },
};

const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The context an outbound call's span starts in: the agent's traceparent (and tracestate), or
 * a trace of its own. An instrumented agent can send several traceparent headers on one call
 * (an SDK's own instrumentation and the HTTP client's each add theirs: Node.js joins them with
 * commas), which W3C Trace Context reads as invalid, splitting the trace. When every value is
 * valid and all name one trace, the last is continued: the innermost, added by the client
 * closest to the wire. Anything else starts a trace of its own, as the specification says.
 */
export function callerContext(headers: IncomingHttpHeaders): Context {
  const raw: string | string[] | undefined = headers.traceparent;
  if (raw === undefined) return ROOT_CONTEXT;
  const tp = Array.isArray(raw) ? raw.join(',') : raw;
  if (!tp.includes(',')) return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  const values = tp.split(',').map((v) => v.trim());
  const traces = new Set(values.map((v) => TRACEPARENT.exec(v)?.[1]));
  if (traces.size !== 1 || traces.has(undefined)) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { ...headers, traceparent: values.at(-1) }, defaultTextMapGetter);
}

/** traceparent (and tracestate) naming `span`, as [name, value, …]; empty without a span. */
export function traceHeadersOf(span: Span | undefined): string[] {
  const out: string[] = [];
  if (span !== undefined) propagator.inject(trace.setSpan(ROOT_CONTEXT, span), out, pairSetter);
  return out;
}
