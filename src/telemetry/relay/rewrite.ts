import type { Attributes, AttributeValue } from '@opentelemetry/api';
import { ProtoWriter } from '../otlp/writer.ts';

// The agent's own OTLP export requests, rewritten on their way through the relay: every
// attribute (resource, scope, span, event, link, log record, data point, exemplar) through the
// telemetry rule set's field rules and detectors, span and event names, status messages and log
// bodies through its detectors, and the sidecar's resource attributes (the pod's k8s.*, host.*,
// cloud.*, deployment environment) added where the agent's resource lacks them. Everything
// else is copied byte for byte, unknown fields included, so a newer agent SDK's fields survive.
// Field numbers are those of opentelemetry-proto (common, resource, trace, logs, metrics v1).

/** The three OTLP signals the relay takes. */
export type RelaySignal = 'traces' | 'metrics' | 'logs';

/** What the rewrite does to text and attributes: the telemetry rule set (src/protect), or nothing. */
export interface RelayProtector {
  /** One attribute: the same value when nothing changed, undefined when a field rule drops it. */
  attribute(key: string, value: AttributeValue): AttributeValue | undefined;
  recurring(value: string): string;
}

/** A request that is not a valid export request of its signal: nothing of it is forwarded. */
export class MalformedOtlp extends Error {}

type Spec = Msg | 'attr' | 'text' | 'any';
interface Msg {
  readonly fields: Readonly<Record<number, Spec>>;
  /** Each occurrence is one item of the signal (a span, a log record, a data point): counted. */
  readonly item?: true;
  /** A ResourceSpans, ResourceLogs or ResourceMetrics: field 1 is its Resource, which gets the sidecar's attributes. */
  readonly holdsResource?: true;
}

const RESOURCE: Msg = { fields: { 1: 'attr' } };
const SCOPE: Msg = { fields: { 3: 'attr' } };
const EVENT: Msg = { fields: { 2: 'text', 3: 'attr' } };
const LINK: Msg = { fields: { 4: 'attr' } };
const STATUS: Msg = { fields: { 2: 'text' } };
const SPAN: Msg = { fields: { 5: 'text', 9: 'attr', 11: EVENT, 13: LINK, 15: STATUS }, item: true };
const LOG_RECORD: Msg = { fields: { 5: 'any', 6: 'attr' }, item: true };
const EXEMPLAR: Msg = { fields: { 7: 'attr' } };
const NUMBER_POINT: Msg = { fields: { 7: 'attr', 5: EXEMPLAR }, item: true };
const HISTOGRAM_POINT: Msg = { fields: { 9: 'attr', 8: EXEMPLAR }, item: true };
const EXPONENTIAL_POINT: Msg = { fields: { 1: 'attr', 11: EXEMPLAR }, item: true };
const SUMMARY_POINT: Msg = { fields: { 7: 'attr' }, item: true };
const METRIC: Msg = {
  fields: {
    5: { fields: { 1: NUMBER_POINT } }, // gauge
    7: { fields: { 1: NUMBER_POINT } }, // sum
    9: { fields: { 1: HISTOGRAM_POINT } },
    10: { fields: { 1: EXPONENTIAL_POINT } },
    11: { fields: { 1: SUMMARY_POINT } },
    12: 'attr', // metadata
  },
};

const REQUESTS: Readonly<Record<RelaySignal, Msg>> = {
  traces: { fields: { 1: { fields: { 1: RESOURCE, 2: { fields: { 1: SCOPE, 2: SPAN } } }, holdsResource: true } } },
  logs: { fields: { 1: { fields: { 1: RESOURCE, 2: { fields: { 1: SCOPE, 2: LOG_RECORD } } }, holdsResource: true } } },
  metrics: { fields: { 1: { fields: { 1: RESOURCE, 2: { fields: { 1: SCOPE, 2: METRIC } } }, holdsResource: true } } },
};

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;
const KEY_VALUE_LIST = 6;
const MAX_DEPTH = 32;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The rewritten request and how many items (spans, log records, data points) it holds. */
export interface Rewritten {
  bytes: Uint8Array;
  items: number;
}

/**
 * Rewrites one export request of `signal`. `extra` are resource attributes added where the
 * agent's resource has no such key. Throws MalformedOtlp when the bytes are not a valid request.
 */
export function rewriteExport(signal: RelaySignal, input: Uint8Array, protect: RelayProtector | undefined, extra: Attributes): Rewritten {
  const rw = new Rewrite(input, protect, extra);
  rw.message(REQUESTS[signal], 0, input.length, 0, undefined);
  return { bytes: rw.w.finish(), items: rw.items };
}

class Rewrite {
  readonly w = new ProtoWriter(4096);
  readonly #b: Buffer;
  readonly #protect: RelayProtector | undefined;
  readonly #extra: Attributes;
  readonly #extraKeys: string[];
  #pos = 0;
  items = 0;

  constructor(b: Uint8Array, protect: RelayProtector | undefined, extra: Attributes) {
    // A Buffer view (no copy): its copy() and latin1 decoding make no view per field.
    this.#b = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.#protect = protect;
    this.#extra = extra;
    this.#extraKeys = Object.keys(extra);
  }

  #varint(end: number): number {
    const b = this.#b;
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= end) throw new MalformedOtlp('truncated varint');
      const c = b[this.#pos++]!;
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
    }
    throw new MalformedOtlp('varint longer than 10 bytes');
  }

  /** Moves past a field's value of wire type `wire`; returns the start of a length-delimited value's bytes. */
  #skip(wire: number, end: number): number {
    if (wire === WIRE_VARINT) this.#varint(end);
    else if (wire === WIRE_FIXED64) this.#pos += 8;
    else if (wire === WIRE_FIXED32) this.#pos += 4;
    else if (wire === WIRE_LENGTH) {
      const n = this.#varint(end);
      const start = this.#pos;
      this.#pos += n;
      if (this.#pos > end) throw new MalformedOtlp('length past the end of its message');
      return start;
    } else throw new MalformedOtlp(`wire type ${wire} is not used by OTLP`);
    if (this.#pos > end) throw new MalformedOtlp('fixed-size value past the end of its message');
    return this.#pos;
  }

  /** A message's fields from start to end, rewritten where `spec` says; `keys` collects a Resource's attribute keys. */
  message(spec: Msg, start: number, end: number, depth: number, keys: Set<string> | undefined): void {
    if (depth > MAX_DEPTH) throw new MalformedOtlp('nested too deep');
    if (spec.item) this.items++;
    let resourceSeen = false;
    this.#pos = start;
    while (this.#pos < end) {
      const fieldStart = this.#pos;
      const tag = this.#varint(end);
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (field === 0) throw new MalformedOtlp('field number 0');
      const valueStart = this.#skip(wire, end);
      const valueEnd = this.#pos;
      const f = wire === WIRE_LENGTH ? spec.fields[field] : undefined;
      if (f === undefined) {
        this.w.copy(this.#b, fieldStart, valueEnd);
        continue;
      }
      if (f === 'attr') this.#keyValue(field, fieldStart, valueStart, valueEnd, depth, keys);
      else if (f === 'text') this.#text(field, fieldStart, valueStart, valueEnd);
      else if (f === 'any') this.#anyValue(field, valueStart, valueEnd, depth);
      else {
        const isResource = spec.holdsResource === true && field === 1;
        const at = this.w.begin(field);
        const seen = isResource ? new Set<string>() : undefined;
        this.message(f, valueStart, valueEnd, depth + 1, seen);
        if (seen !== undefined) this.#addExtra(seen);
        this.w.end(at);
        resourceSeen ||= isResource;
      }
      this.#pos = valueEnd;
    }
    if (spec.holdsResource && !resourceSeen && this.#extraKeys.length > 0) {
      const at = this.w.begin(1);
      this.#addExtra(new Set());
      this.w.end(at);
    }
  }

  #addExtra(present: Set<string>): void {
    for (const k of this.#extraKeys) if (!present.has(k)) this.w.attributes(1, { [k]: this.#extra[k] });
  }

  #string(start: number, end: number): string {
    // Keys and values are mostly ASCII, which needs no validation and decodes fastest as latin1.
    const b = this.#b;
    let i = start;
    while (i < end && b[i]! < 0x80) i++;
    if (i === end) return b.toString('latin1', start, end);
    try {
      return utf8.decode(this.#b.subarray(start, end));
    } catch {
      throw new MalformedOtlp('a string that is not UTF-8');
    }
  }

  #text(field: number, fieldStart: number, start: number, end: number): void {
    const s = this.#string(start, end);
    const out = this.#protect === undefined ? s : this.#protect.recurring(s);
    if (out === s) this.w.copy(this.#b, fieldStart, end);
    else this.w.string(field, out);
  }

  /** One KeyValue: its value decoded, protected with its key, and written back only when it changed. */
  #keyValue(field: number, fieldStart: number, start: number, end: number, depth: number, keys: Set<string> | undefined): void {
    let key: string | undefined;
    let vStart = -1;
    let vEnd = -1;
    this.#pos = start;
    while (this.#pos < end) {
      const tag = this.#varint(end);
      const s = this.#skip(tag & 7, end);
      if (tag === (1 << 3) + WIRE_LENGTH) key = this.#string(s, this.#pos);
      else if (tag === (2 << 3) + WIRE_LENGTH) [vStart, vEnd] = [s, this.#pos];
    }
    if (key === undefined) throw new MalformedOtlp('an attribute without a key');
    keys?.add(key);
    const raw = () => this.w.copy(this.#b, fieldStart, end);
    if (vStart < 0) return raw();
    const list = this.#keyValueList(vStart, vEnd);
    if (list >= 0) {
      // A map value: each of its entries is an attribute of its own.
      const kv = this.w.begin(field);
      this.w.string(1, key);
      const any = this.w.begin(2);
      const kvl = this.w.begin(KEY_VALUE_LIST);
      this.#mapEntries(list, vEnd, depth + 1);
      this.w.end(kvl);
      this.w.end(any);
      this.w.end(kv);
      return;
    }
    const protect = this.#protect;
    const value = protect === undefined ? undefined : this.#decodeAny(vStart, vEnd);
    if (protect === undefined || value === undefined) return this.w.copy(this.#b, fieldStart, end);
    const v = protect.attribute(key, value);
    if (v === value) return this.w.copy(this.#b, fieldStart, end);
    if (v === undefined || v === null) return; // dropped by a field rule
    this.w.attributes(field, { [key]: v });
  }

  /** Where the KeyValueList of an AnyValue that holds nothing else starts; -1 for any other AnyValue. */
  #keyValueList(start: number, end: number): number {
    if (start >= end) return -1;
    this.#pos = start;
    if (this.#varint(end) !== (KEY_VALUE_LIST << 3) + WIRE_LENGTH) return -1;
    const n = this.#varint(end);
    return this.#pos + n === end ? this.#pos : -1;
  }

  /**
   * The fields of a KeyValueList or ArrayValue from start to end: each entry (field 1) through
   * `each` with its field's start and its value's bytes, anything else copied.
   */
  #entries(start: number, end: number, each: (fieldStart: number, s: number, e: number) => void): void {
    this.#pos = start;
    while (this.#pos < end) {
      const fieldStart = this.#pos;
      const tag = this.#varint(end);
      const s = this.#skip(tag & 7, end);
      const e = this.#pos;
      if (tag === (1 << 3) + WIRE_LENGTH) each(fieldStart, s, e);
      else this.w.copy(this.#b, fieldStart, e);
      this.#pos = e;
    }
  }

  /** A map's entries (a KeyValueList), each an attribute of its own. */
  #mapEntries(start: number, end: number, depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedOtlp('nested too deep');
    this.#entries(start, end, (fieldStart, s, e) => this.#keyValue(1, fieldStart, s, e, depth + 1, undefined));
  }

  /**
   * An AnyValue (a log body, an array's element): strings through the detectors, arrays element
   * by element, map entries as attributes; bytes and numbers as they are.
   */
  #anyValue(field: number, start: number, end: number, depth: number): void {
    if (depth > MAX_DEPTH) throw new MalformedOtlp('nested too deep');
    const at = this.w.begin(field);
    this.#pos = start;
    while (this.#pos < end) {
      const inner = this.#pos;
      const tag = this.#varint(end);
      const s = this.#skip(tag & 7, end);
      const e = this.#pos;
      if (tag === (1 << 3) + WIRE_LENGTH) this.#text(1, inner, s, e);
      else if (tag === (5 << 3) + WIRE_LENGTH) {
        // ArrayValue: repeated AnyValue values = 1.
        const arr = this.w.begin(5);
        this.#entries(s, e, (_, es, ee) => this.#anyValue(1, es, ee, depth + 1));
        this.w.end(arr);
      } else if (tag === (KEY_VALUE_LIST << 3) + WIRE_LENGTH) {
        const kvl = this.w.begin(KEY_VALUE_LIST);
        this.#mapEntries(s, e, depth + 1);
        this.w.end(kvl);
      } else this.w.copy(this.#b, inner, e);
      this.#pos = e;
    }
    this.w.end(at);
  }

  /** An AnyValue as an attribute value (string, bool, safe integer, double, array of those); undefined for anything else. */
  #decodeAny(start: number, end: number): AttributeValue | undefined {
    this.#pos = start;
    let out: AttributeValue | undefined;
    while (this.#pos < end) {
      const tag = this.#varint(end);
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === WIRE_LENGTH) {
        const s = this.#skip(wire, end);
        out = this.#string(s, this.#pos);
      } else if (field === 2 && wire === WIRE_VARINT) out = this.#varint(end) !== 0;
      else if (field === 3 && wire === WIRE_VARINT) {
        const s = this.#pos;
        const v = this.#varint(end);
        // A negative int64 is ten bytes of two's complement: read it exactly, or not at all.
        if (this.#pos - s === 10) {
          const big = BigInt.asIntN(64, readBig(this.#b, s));
          if (big < BigInt(Number.MIN_SAFE_INTEGER)) return undefined;
          out = Number(big);
        } else if (Number.isSafeInteger(v)) out = v;
        else return undefined;
      } else if (field === 4 && wire === WIRE_FIXED64) {
        const s = this.#skip(wire, end);
        out = new DataView(this.#b.buffer, this.#b.byteOffset + s - 8, 8).getFloat64(0, true);
      } else if (field === 5 && wire === WIRE_LENGTH) {
        const s = this.#skip(wire, end);
        const e = this.#pos;
        const arr: Array<string | number | boolean> = [];
        this.#pos = s;
        while (this.#pos < e) {
          const t = this.#varint(e);
          const es = this.#skip(t & 7, e);
          const ee = this.#pos;
          if (t !== (1 << 3) + WIRE_LENGTH) return undefined;
          const el = this.#decodeAny(es, ee);
          if (el === undefined || Array.isArray(el)) return undefined;
          arr.push(el as string | number | boolean);
          this.#pos = ee;
        }
        out = arr as AttributeValue;
      } else return undefined;
    }
    return out;
  }
}

function readBig(b: Uint8Array, start: number): bigint {
  let v = 0n;
  let shift = 0n;
  for (let i = start; i < start + 10; i++) {
    v |= BigInt(b[i]! & 0x7f) << shift;
    shift += 7n;
  }
  return BigInt.asUintN(64, v);
}
