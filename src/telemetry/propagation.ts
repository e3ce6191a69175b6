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

/** The context an outbound call's span starts in: the agent's traceparent (and tracestate), or a trace of its own. */
export function callerContext(headers: IncomingHttpHeaders): Context {
  return headers.traceparent === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

/** traceparent (and tracestate) naming `span`, as [name, value, …]; empty without a span. */
export function traceHeadersOf(span: Span | undefined): string[] {
  const out: string[] = [];
  if (span !== undefined) propagator.inject(trace.setSpan(ROOT_CONTEXT, span), out, pairSetter);
  return out;
}
