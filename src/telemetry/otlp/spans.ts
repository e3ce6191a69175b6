import type { Link } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { Resource } from '@opentelemetry/resources';
import { ProtoWriter } from './writer.ts';
import { EXPORT_REQUEST, INSTRUMENTATION_SCOPE, RESOURCE, RESOURCE_SPANS, SCOPE_SPANS, SPAN, SPAN_EVENT, SPAN_LINK, STATUS } from './fields.ts';

type Scope = ReadableSpan['instrumentationScope'];

// opentelemetry.proto.trace.v1.Span.SpanFlags
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/**
 * Encodes the SDK's finished spans as opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest,
 * field for field as the SDK's own serializer does, but with each resource encoded once and
 * short ASCII attributes (nearly all of ours) written in one pass.
 */
export class SpansEncoder {
  readonly #w = new ProtoWriter();
  readonly #resources = new WeakMap<Resource, Uint8Array>();

  encode(spans: readonly ReadableSpan[]): Uint8Array {
    const w = this.#w;
    w.reset();
    // Group by resource, then by scope (identity: one provider hands out the same objects).
    const byResource = new Map<Resource, Map<Scope, ReadableSpan[]>>();
    for (const span of spans) {
      let scopes = byResource.get(span.resource);
      if (scopes === undefined) byResource.set(span.resource, (scopes = new Map()));
      const list = scopes.get(span.instrumentationScope);
      if (list === undefined) scopes.set(span.instrumentationScope, [span]);
      else list.push(span);
    }
    for (const [resource, scopes] of byResource) {
      const rs = w.begin(EXPORT_REQUEST.resourceSpans);
      w.raw(this.#resource(resource));
      for (const [scope, list] of scopes) {
        const ss = w.begin(RESOURCE_SPANS.scopeSpans);
        const sc = w.begin(SCOPE_SPANS.scope);
        w.string(INSTRUMENTATION_SCOPE.name, scope.name);
        if (scope.version !== undefined) w.string(INSTRUMENTATION_SCOPE.version, scope.version);
        w.end(sc);
        for (const span of list) this.#span(span);
        if (scope.schemaUrl !== undefined) w.string(SCOPE_SPANS.schemaUrl, scope.schemaUrl);
        w.end(ss);
      }
      if (resource.schemaUrl !== undefined) w.string(RESOURCE_SPANS.schemaUrl, resource.schemaUrl);
      w.end(rs);
    }
    return w.finish();
  }

  #resource(resource: Resource): Uint8Array {
    let bytes = this.#resources.get(resource);
    if (bytes === undefined) {
      const w = new ProtoWriter(4096);
      const r = w.begin(RESOURCE_SPANS.resource);
      w.attributes(RESOURCE.attributes, resource.attributes);
      w.end(r);
      this.#resources.set(resource, (bytes = w.finish()));
    }
    return bytes;
  }

  #span(span: ReadableSpan): void {
    const w = this.#w;
    const ctx = span.spanContext();
    const at = w.begin(SCOPE_SPANS.spans);
    w.hex(SPAN.traceId, ctx.traceId);
    w.hex(SPAN.spanId, ctx.spanId);
    const traceState = ctx.traceState?.serialize();
    if (traceState) w.string(SPAN.traceState, traceState);
    const parent = span.parentSpanContext;
    if (parent?.spanId) w.hex(SPAN.parentSpanId, parent.spanId);
    w.string(SPAN.name, span.name);
    w.uint(SPAN.kind, span.kind + 1); // SPAN_KIND_* = the API's SpanKind + 1
    w.hrTime(SPAN.startTimeUnixNano, span.startTime);
    w.hrTime(SPAN.endTimeUnixNano, span.endTime);
    w.attributes(SPAN.attributes, span.attributes);
    if (span.droppedAttributesCount > 0) w.uint(SPAN.droppedAttributesCount, span.droppedAttributesCount);
    for (const e of span.events) this.#event(e);
    if (span.droppedEventsCount > 0) w.uint(SPAN.droppedEventsCount, span.droppedEventsCount);
    for (const l of span.links) this.#link(l);
    if (span.droppedLinksCount > 0) w.uint(SPAN.droppedLinksCount, span.droppedLinksCount);
    const st = w.begin(SPAN.status);
    if (span.status.message) w.string(STATUS.message, span.status.message);
    if (span.status.code !== 0) w.uint(STATUS.code, span.status.code);
    w.end(st);
    w.fixed32(SPAN.flags, (ctx.traceFlags & 0xff) | HAS_IS_REMOTE | (parent?.isRemote ? IS_REMOTE : 0));
    w.end(at);
  }

  #event(e: TimedEvent): void {
    const w = this.#w;
    const at = w.begin(SPAN.events);
    w.hrTime(SPAN_EVENT.timeUnixNano, e.time);
    w.string(SPAN_EVENT.name, e.name);
    if (e.attributes !== undefined) w.attributes(SPAN_EVENT.attributes, e.attributes);
    if (e.droppedAttributesCount) w.uint(SPAN_EVENT.droppedAttributesCount, e.droppedAttributesCount);
    w.end(at);
  }

  #link(l: Link): void {
    const w = this.#w;
    const at = w.begin(SPAN.links);
    w.hex(SPAN_LINK.traceId, l.context.traceId);
    w.hex(SPAN_LINK.spanId, l.context.spanId);
    const traceState = l.context.traceState?.serialize();
    if (traceState) w.string(SPAN_LINK.traceState, traceState);
    if (l.attributes !== undefined) w.attributes(SPAN_LINK.attributes, l.attributes);
    if (l.droppedAttributesCount) w.uint(SPAN_LINK.droppedAttributesCount, l.droppedAttributesCount);
    w.fixed32(SPAN_LINK.flags, (l.context.traceFlags & 0xff) | HAS_IS_REMOTE | (l.context.isRemote ? IS_REMOTE : 0));
    w.end(at);
  }
}
