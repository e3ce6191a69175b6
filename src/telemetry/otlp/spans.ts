import type { Link } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { Resource } from '@opentelemetry/resources';
import { ProtoWriter } from './writer.ts';
import { EXPORT_REQUEST, INSTRUMENTATION_SCOPE, RESOURCE, RESOURCE_SPANS, SCOPE_SPANS, SPAN, SPAN_EVENT, SPAN_LINK, STATUS } from './fields.ts';

type Scope = ReadableSpan['instrumentationScope'];

/** Spans of one resource and scope: they share the ResourceSpans and ScopeSpans of a batch. */
interface SpanGroup {
  readonly resource: Resource;
  readonly scope: Scope;
}

/**
 * A finished span already encoded (its ScopeSpans.spans field, tag and length included), with
 * the group it is exported in. Small and flat: it is what waits for the batch, not the span.
 */
export interface EncodedSpan {
  readonly group: SpanGroup;
  readonly bytes: Uint8Array;
}

/** Encoded spans are copied into slabs of this size, so that each is a view, not an allocation of its own. */
const SLAB_BYTES = 64 * 1024;

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
  readonly #groups = new Map<Resource, Map<Scope, SpanGroup>>();
  #slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #slabAt = 0;

  /**
   * One finished span, encoded at once (eager encoding): the span object can then die young,
   * in the scavenge after its request, instead of waiting for its batch in the old generation.
   * The bytes are the span as a batch carries it (encodeEncoded).
   */
  encodeOne(span: ReadableSpan): EncodedSpan {
    const w = this.#w;
    w.reset();
    this.#span(span);
    const bytes = w.view();
    if (this.#slabAt + bytes.length > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes.length));
      this.#slabAt = 0;
    }
    const at = this.#slabAt;
    this.#slab.set(bytes, at);
    this.#slabAt = at + bytes.length;
    return { group: this.#group(span.resource, span.instrumentationScope), bytes: this.#slab.subarray(at, this.#slabAt) };
  }

  /** A batch of spans encoded by encodeOne, as one ExportTraceServiceRequest. */
  encodeEncoded(spans: readonly EncodedSpan[]): Uint8Array {
    const w = this.#w;
    w.reset();
    const byGroup = new Map<SpanGroup, EncodedSpan[]>();
    for (const s of spans) {
      const list = byGroup.get(s.group);
      if (list === undefined) byGroup.set(s.group, [s]);
      else list.push(s);
    }
    const byResource = new Map<Resource, SpanGroup[]>();
    for (const g of byGroup.keys()) {
      const list = byResource.get(g.resource);
      if (list === undefined) byResource.set(g.resource, [g]);
      else list.push(g);
    }
    for (const [resource, groups] of byResource) {
      const rs = w.begin(EXPORT_REQUEST.resourceSpans);
      w.raw(this.#resource(resource));
      for (const g of groups) {
        const ss = this.#scopeStart(g.scope);
        for (const s of byGroup.get(g)!) w.raw(s.bytes);
        if (g.scope.schemaUrl !== undefined) w.string(SCOPE_SPANS.schemaUrl, g.scope.schemaUrl);
        w.end(ss);
      }
      if (resource.schemaUrl !== undefined) w.string(RESOURCE_SPANS.schemaUrl, resource.schemaUrl);
      w.end(rs);
    }
    return w.finish();
  }

  #group(resource: Resource, scope: Scope): SpanGroup {
    let scopes = this.#groups.get(resource);
    if (scopes === undefined) this.#groups.set(resource, (scopes = new Map()));
    let g = scopes.get(scope);
    if (g === undefined) scopes.set(scope, (g = { resource, scope }));
    return g;
  }

  /** Opens a ScopeSpans with its scope written; pass the result to end(). */
  #scopeStart(scope: Scope): number {
    const w = this.#w;
    const ss = w.begin(RESOURCE_SPANS.scopeSpans);
    const sc = w.begin(SCOPE_SPANS.scope);
    w.string(INSTRUMENTATION_SCOPE.name, scope.name);
    if (scope.version !== undefined) w.string(INSTRUMENTATION_SCOPE.version, scope.version);
    w.end(sc);
    return ss;
  }

  /** A batch of finished spans, as one ExportTraceServiceRequest: encodeOne each, then encodeEncoded. */
  encode(spans: readonly ReadableSpan[]): Uint8Array {
    return this.encodeEncoded(spans.map((span) => this.encodeOne(span)));
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
