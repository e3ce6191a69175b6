import type { Link } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { Resource } from '@opentelemetry/resources';
import { ProtoWriter } from './writer.ts';

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
      const rs = w.begin(1); // resource_spans
      w.raw(this.#resource(resource));
      for (const [scope, list] of scopes) {
        const ss = w.begin(2); // scope_spans
        const sc = w.begin(1);
        w.string(1, scope.name);
        if (scope.version !== undefined) w.string(2, scope.version);
        w.end(sc);
        for (const span of list) this.#span(span);
        if (scope.schemaUrl !== undefined) w.string(3, scope.schemaUrl);
        w.end(ss);
      }
      if (resource.schemaUrl !== undefined) w.string(3, resource.schemaUrl);
      w.end(rs);
    }
    return w.finish();
  }

  #resource(resource: Resource): Uint8Array {
    let bytes = this.#resources.get(resource);
    if (bytes === undefined) {
      const w = new ProtoWriter(4096);
      const r = w.begin(1);
      w.attributes(1, resource.attributes);
      w.end(r);
      this.#resources.set(resource, (bytes = w.finish()));
    }
    return bytes;
  }

  #span(span: ReadableSpan): void {
    const w = this.#w;
    const ctx = span.spanContext();
    const at = w.begin(2); // spans
    w.hex(1, ctx.traceId);
    w.hex(2, ctx.spanId);
    const traceState = ctx.traceState?.serialize();
    if (traceState) w.string(3, traceState);
    const parent = span.parentSpanContext;
    if (parent?.spanId) w.hex(4, parent.spanId);
    w.string(5, span.name);
    w.uint(6, span.kind + 1); // SPAN_KIND_* = the API's SpanKind + 1
    w.hrTime(7, span.startTime);
    w.hrTime(8, span.endTime);
    w.attributes(9, span.attributes);
    if (span.droppedAttributesCount > 0) w.uint(10, span.droppedAttributesCount);
    for (const e of span.events) this.#event(e);
    if (span.droppedEventsCount > 0) w.uint(12, span.droppedEventsCount);
    for (const l of span.links) this.#link(l);
    if (span.droppedLinksCount > 0) w.uint(14, span.droppedLinksCount);
    const st = w.begin(15);
    if (span.status.message) w.string(2, span.status.message);
    if (span.status.code !== 0) w.uint(3, span.status.code);
    w.end(st);
    w.fixed32(16, (ctx.traceFlags & 0xff) | HAS_IS_REMOTE | (parent?.isRemote ? IS_REMOTE : 0));
    w.end(at);
  }

  #event(e: TimedEvent): void {
    const w = this.#w;
    const at = w.begin(11);
    w.hrTime(1, e.time);
    w.string(2, e.name);
    if (e.attributes !== undefined) w.attributes(3, e.attributes);
    if (e.droppedAttributesCount) w.uint(4, e.droppedAttributesCount);
    w.end(at);
  }

  #link(l: Link): void {
    const w = this.#w;
    const at = w.begin(13);
    w.hex(1, l.context.traceId);
    w.hex(2, l.context.spanId);
    const traceState = l.context.traceState?.serialize();
    if (traceState) w.string(3, traceState);
    if (l.attributes !== undefined) w.attributes(4, l.attributes);
    if (l.droppedAttributesCount) w.uint(5, l.droppedAttributesCount);
    w.fixed32(6, (l.context.traceFlags & 0xff) | HAS_IS_REMOTE | (l.context.isRemote ? IS_REMOTE : 0));
    w.end(at);
  }
}
