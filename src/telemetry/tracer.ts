import { randomFillSync } from 'node:crypto';
import {
  context as contextApi,
  isSpanContextValid,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
} from '@opentelemetry/api';
import { hrTime, hrTimeDuration, timeInputToHrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { SamplingDecision, type ReadableSpan, type Sampler, type SpanProcessor, type TimedEvent } from '@opentelemetry/sdk-trace';

/** The SDK's default span limits. */
const ATTRIBUTE_COUNT_LIMIT = 128;
const EVENT_COUNT_LIMIT = 128;
const LINK_COUNT_LIMIT = 128;

type Scope = ReadableSpan['instrumentationScope'];

/**
 * The tracer of the request path: the SDK's sampler decides, spans are recorded into plain
 * objects that are their own ReadableSpan, and a finished span goes straight to the span
 * processor (the Batcher's). The SDK's Tracer does the same with more machinery per span
 * (span limits re-read, attributes sanitized one by one, time kept three ways, processors
 * fanned out): npm run bench:micro:telemetry times both on the same spans ("SDK tracer"), and
 * spans are smaller while they wait for export.
 * Everything else that makes spans (the egress listener) keeps the SDK's tracer; both end in
 * the same processor, so the export is one.
 */
export class RequestTracer implements Tracer {
  readonly #sampler: Sampler;
  readonly #resource: Resource;
  readonly #scope: Scope;
  readonly #processor: SpanProcessor;

  constructor(o: { sampler: Sampler; resource: Resource; scope: Scope; processor: SpanProcessor }) {
    this.#sampler = o.sampler;
    this.#resource = o.resource;
    this.#scope = o.scope;
    this.#processor = o.processor;
  }

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = contextApi.active()): Span {
    const candidate = options.root ? undefined : trace.getSpanContext(ctx);
    const parent = candidate !== undefined && isSpanContextValid(candidate) ? candidate : undefined;
    const traceId = parent?.traceId ?? randomId(16);
    const spanId = randomId(8);
    const kind = options.kind ?? SpanKind.INTERNAL;
    const links = options.links ?? [];
    const attributes = options.attributes ?? {};
    const sampled = this.#sampler.shouldSample(options.root ? trace.deleteSpan(ctx) : ctx, traceId, name, kind, attributes, links);
    const traceState = sampled.traceState ?? parent?.traceState;
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags: sampled.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
    };
    if (traceState !== undefined) spanContext.traceState = traceState;
    if (sampled.decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    const start = options.startTime === undefined ? hrTime() : timeInputToHrTime(options.startTime);
    const span = new RecordedSpan(name, kind, spanContext, parent, this.#resource, this.#scope, this.#processor, start);
    span.setAttributes(attributes);
    if (sampled.attributes !== undefined) span.setAttributes(sampled.attributes);
    for (const l of links) span.addLink(l);
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: [F] | [SpanOptions, F] | [SpanOptions, Context, F]): ReturnType<F> {
    const fn = rest[rest.length - 1] as F;
    const options = rest.length > 1 ? (rest[0] as SpanOptions) : {};
    const ctx = rest.length > 2 ? (rest[1] as Context) : contextApi.active();
    const span = this.startSpan(name, options, ctx);
    return contextApi.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}

/** One span while it is recorded, and the ReadableSpan it is once ended. */
class RecordedSpan implements Span, ReadableSpan {
  name: string;
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  readonly resource: Resource;
  readonly instrumentationScope: Scope;
  readonly attributes: Attributes = {};
  readonly links: Link[] = [];
  readonly events: TimedEvent[] = [];
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  readonly startTime: HrTime;
  endTime: HrTime = [0, 0];
  duration: HrTime = [0, 0];
  ended = false;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  readonly #context: SpanContext;
  readonly #processor: SpanProcessor;
  #count = 0;

  constructor(
    name: string,
    kind: SpanKind,
    ctx: SpanContext,
    parent: SpanContext | undefined,
    resource: Resource,
    scope: Scope,
    processor: SpanProcessor,
    start: HrTime,
  ) {
    this.name = name;
    this.kind = kind;
    this.#context = ctx;
    this.parentSpanContext = parent;
    this.resource = resource;
    this.instrumentationScope = scope;
    this.#processor = processor;
    this.startTime = start;
  }

  spanContext(): SpanContext {
    return this.#context;
  }

  setAttribute(key: string, value: AttributeValue | undefined): this {
    if (this.ended || value === undefined || value === null || key.length === 0) return this;
    if (!Object.hasOwn(this.attributes, key)) {
      if (this.#count >= ATTRIBUTE_COUNT_LIMIT) {
        this.droppedAttributesCount++;
        return this;
      }
      this.#count++;
    }
    this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key]);
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    if (this.events.length >= EVENT_COUNT_LIMIT) {
      this.droppedEventsCount++;
      return this;
    }
    const isTime = attributesOrTime instanceof Date || typeof attributesOrTime === 'number' || Array.isArray(attributesOrTime);
    const attributes = isTime ? undefined : (attributesOrTime as Attributes | undefined);
    const at = isTime ? (attributesOrTime as TimeInput) : time;
    this.events.push({ name, attributes, time: at === undefined ? hrTime() : timeInputToHrTime(at), droppedAttributesCount: 0 });
    return this;
  }

  addLink(link: Link): this {
    if (this.ended) return this;
    if (this.links.length >= LINK_COUNT_LIMIT) this.droppedLinksCount++;
    else this.links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.ended || this.status.code === SpanStatusCode.OK) return this;
    if (status.code === SpanStatusCode.UNSET) return this;
    this.status = status.code === SpanStatusCode.ERROR && status.message !== undefined ? { code: status.code, message: status.message } : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.ended) return;
    this.ended = true;
    this.endTime = endTime === undefined ? hrTime() : timeInputToHrTime(endTime);
    this.duration = hrTimeDuration(this.startTime, this.endTime);
    this.#processor.onEnd(this);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else {
      if (exception.name !== undefined) attributes['exception.type'] = exception.name;
      else if (exception.code !== undefined) attributes['exception.type'] = String(exception.code);
      if (exception.message !== undefined) attributes['exception.message'] = exception.message;
      if (exception.stack !== undefined) attributes['exception.stacktrace'] = exception.stack;
    }
    this.addEvent('exception', attributes, time);
  }
}

// Ids from the system's CSPRNG, drawn 4 KiB at a time.
const pool = Buffer.allocUnsafe(4096);
let pooled = pool.length;
const ZERO = /^0+$/;

function randomId(bytes: number): string {
  for (;;) {
    if (pooled + bytes > pool.length) {
      randomFillSync(pool);
      pooled = 0;
    }
    const id = pool.toString('hex', pooled, pooled + bytes);
    pooled += bytes;
    // All zeros is the invalid id.
    if (!ZERO.test(id)) return id;
  }
}
