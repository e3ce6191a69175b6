import type { AttributeValue, Attributes } from '@opentelemetry/api';
import { ANY_VALUE, ARRAY_VALUE, KEY_VALUE } from './fields.ts';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;
// The tags the fast paths write as bytes: KeyValue's key and value, AnyValue's string and int.
const KEY_TAG = (KEY_VALUE.key << 3) | WIRE_LENGTH;
const VALUE_TAG = (KEY_VALUE.value << 3) | WIRE_LENGTH;
const STRING_VALUE_TAG = (ANY_VALUE.stringValue << 3) | WIRE_LENGTH;
const INT_VALUE_TAG = (ANY_VALUE.intValue << 3) | WIRE_VARINT;

/**
 * A protobuf writer for the few OTLP messages the request path encodes itself: one growing
 * buffer, reused from batch to batch, and length prefixes patched in place. Nested messages
 * reserve two bytes for their length (anything under 16 KiB) and move only when that guess
 * is wrong.
 */
export class ProtoWriter {
  #buf: Buffer;
  pos = 0;

  constructor(initial = 64 * 1024) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  /** The bytes written since the last reset, copied out (the buffer is reused). */
  finish(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.#buf, 0, this.pos);
  }

  /** The bytes written since the last reset, as a view of the buffer: valid until the next write. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }

  #room(n: number): void {
    if (this.pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.pos);
    this.#buf = next;
  }

  varint(v: number): void {
    this.#room(10);
    const b = this.#buf;
    if (v < 128) {
      b[this.pos++] = v;
      return;
    }
    // Up to 2^53: split, since bitwise operators are 32-bit.
    while (v > 0x7f) {
      b[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    b[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** A field holding a varint (uint32, int64 >= 0, enum, bool). */
  uint(field: number, v: number): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  /** A fixed64 field from a bigint (nanosecond timestamps). */
  fixed64(field: number, v: bigint): void {
    this.tag(field, WIRE_FIXED64);
    this.#room(8);
    this.pos = this.#buf.writeBigUInt64LE(v, this.pos);
  }

  /** A fixed64 timestamp from an HrTime ([seconds, nanoseconds]), exactly, without BigInt. */
  hrTime(field: number, [sec, nanos]: readonly [number, number]): void {
    this.tag(field, WIRE_FIXED64);
    this.#room(8);
    // sec * 1e9 + nanos in two 32-bit halves, from 16-bit limbs of sec so that every
    // intermediate product stays below 2^53.
    const p0 = (sec % 65536) * 1e9;
    const p1 = Math.floor(sec / 65536) * 1e9;
    const low = (p1 % 65536) * 65536 + p0 + nanos;
    const lo = low % 4294967296;
    const hi = Math.floor(p1 / 65536) + Math.floor(low / 4294967296);
    this.pos = this.#buf.writeUInt32LE(lo, this.pos);
    this.pos = this.#buf.writeUInt32LE(hi, this.pos);
  }

  fixed32(field: number, v: number): void {
    this.tag(field, WIRE_FIXED32);
    this.#room(4);
    this.pos = this.#buf.writeUInt32LE(v >>> 0, this.pos);
  }

  double(field: number, v: number): void {
    this.tag(field, WIRE_FIXED64);
    this.#room(8);
    this.pos = this.#buf.writeDoubleLE(v, this.pos);
  }

  string(field: number, s: string): void {
    this.tag(field, WIRE_LENGTH);
    const len = s.length;
    if (len < 128) {
      // Short ASCII (keys, methods, routes, ids) is copied char by char: crossing into
      // Buffer#write costs more than the copy.
      this.#room(len + 1);
      const b = this.#buf;
      const at = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        b[at + i] = c;
      }
      if (i === len) {
        b[this.pos] = len;
        this.pos = at + len;
        return;
      }
    }
    const n = Buffer.byteLength(s);
    this.varint(n);
    this.#room(n);
    this.pos += this.#buf.write(s, this.pos, n, 'utf8');
  }

  /** A bytes field from hex (trace and span ids); an empty string writes nothing. */
  hex(field: number, hex: string): void {
    if (hex === '') return;
    this.tag(field, WIRE_LENGTH);
    const n = hex.length >>> 1;
    this.varint(n);
    this.#room(n);
    this.pos += this.#buf.write(hex, this.pos, n, 'hex');
  }

  /** Bytes encoded once (a resource, a scope), written as they are. */
  raw(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Bytes start..end of `src`, copied as they are (no view of them made). */
  copy(src: Buffer, start: number, end: number): void {
    this.#room(end - start);
    this.pos += src.copy(this.#buf, this.pos, start, end);
  }

  /** Starts a nested message in `field`; pass the result to end(). */
  begin(field: number): number {
    this.tag(field, WIRE_LENGTH);
    this.#room(2);
    this.pos += 2;
    return this.pos;
  }

  end(start: number): void {
    const len = this.pos - start;
    const b = this.#buf;
    if (len < 128) {
      b.copy(b, start - 1, start, this.pos);
      b[start - 2] = len;
      this.pos -= 1;
    } else if (len < 16384) {
      b[start - 2] = (len & 0x7f) | 0x80;
      b[start - 1] = len >>> 7;
    } else {
      const extra = len < 2097152 ? 1 : len < 268435456 ? 2 : 3;
      this.#room(extra);
      b.copy(this.#buf, start + extra, start, this.pos);
      const c = this.#buf;
      let p = start - 2;
      let v = len;
      while (v > 0x7f) {
        c[p++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      c[p] = v;
      this.pos += extra;
    }
  }

  /** opentelemetry.proto.common.v1.AnyValue, as the SDK maps JS values (integers to int_value). */
  anyValue(field: number, v: AttributeValue): void {
    const at = this.begin(field);
    if (typeof v === 'string') this.string(ANY_VALUE.stringValue, v);
    else if (typeof v === 'boolean') this.uint(ANY_VALUE.boolValue, v ? 1 : 0);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && v >= 0) this.uint(ANY_VALUE.intValue, v);
      else if (Number.isSafeInteger(v)) this.int64(ANY_VALUE.intValue, v);
      else this.double(ANY_VALUE.doubleValue, v);
    } else if (Array.isArray(v)) {
      const arr = this.begin(ANY_VALUE.arrayValue);
      for (const item of v) {
        // An empty AnyValue keeps the positions of null entries, as the SDK writes them.
        if (item === null || item === undefined) this.end(this.begin(ARRAY_VALUE.values));
        else this.anyValue(ARRAY_VALUE.values, item as AttributeValue);
      }
      this.end(arr);
    }
    this.end(at);
  }

  /** A negative int64 as a ten-byte two's complement varint. */
  int64(field: number, v: number): void {
    this.tag(field, WIRE_VARINT);
    let big = BigInt.asUintN(64, BigInt(v));
    this.#room(10);
    while (big > 0x7fn) {
      this.#buf[this.pos++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    this.#buf[this.pos++] = Number(big);
  }

  /**
   * At this.pos, without moving it: a KeyValue's tag and length, its key and the tag and
   * length of an AnyValue of `anyLen` bytes; the position after them, or -1 when the key is
   * not ASCII (nothing is committed until the caller sets this.pos).
   */
  #keyValueHead(field: number, key: string, anyLen: number): number {
    const b = this.#buf;
    let p = this.pos;
    b[p++] = (field << 3) | WIRE_LENGTH;
    b[p++] = key.length + anyLen + 4; // KeyValue
    b[p++] = KEY_TAG;
    b[p++] = key.length;
    p = copyAscii(b, p, key);
    if (p < 0) return -1;
    b[p++] = VALUE_TAG;
    b[p++] = anyLen;
    return p;
  }

  /** repeated KeyValue attributes in `field` (a field number under 16). */
  attributes(field: number, attrs: Attributes): void {
    for (const key in attrs) {
      const v = attrs[key];
      if (v === undefined || v === null) continue;
      if (typeof v === 'string' ? this.#shortString(field, key, v) : typeof v === 'number' && this.#shortUint(field, key, v)) continue;
      const kv = this.begin(field);
      this.string(KEY_VALUE.key, key);
      this.anyValue(KEY_VALUE.value, v);
      this.end(kv);
    }
  }

  // The common attribute, short ASCII key and value, is written in one pass with its lengths
  // known up front (no length patching); anything else falls back to begin/end.
  #shortString(field: number, key: string, value: string): boolean {
    const vLen = value.length;
    if (key.length + vLen > 120) return false;
    this.#room(key.length + vLen + 8);
    let p = this.#keyValueHead(field, key, vLen + 2);
    if (p < 0) return false;
    const b = this.#buf;
    b[p++] = STRING_VALUE_TAG;
    b[p++] = vLen;
    p = copyAscii(b, p, value);
    if (p < 0) return false;
    this.pos = p;
    return true;
  }

  #shortUint(field: number, key: string, value: number): boolean {
    if (key.length > 100 || !Number.isSafeInteger(value) || value < 0 || value >= 2 ** 28) return false;
    const vSize = value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
    this.#room(key.length + vSize + 8);
    let p = this.#keyValueHead(field, key, vSize + 1);
    if (p < 0) return false;
    const b = this.#buf;
    b[p++] = INT_VALUE_TAG;
    let v = value;
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
    return true;
  }
}

/** Copies `s` into `b` at `p` when it is all ASCII: the position after it, or -1. */
function copyAscii(b: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    b[p++] = c;
  }
  return p;
}
