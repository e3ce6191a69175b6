import { Transform } from 'node:stream';
import type { SidecarError } from '../../errors/index.ts';
import type { BodyTransform } from '../../core/index.ts';
import type { Protector } from '../engine.ts';
import { decode, type ContentType } from './content.ts';

/**
 * A JSON or text body, protected whole. `undefined`: it cannot be read as its Content-Type
 * says (invalid UTF-8 or JSON, another charset); `lenient` then protects what can still be
 * read as text, for onError: pass. Unchanged bodies come back as the same Buffer.
 */
export function protectWhole(p: Protector, ct: ContentType | undefined, body: Buffer, lenient = false): Buffer | undefined {
  if (body.length === 0) return body;
  const decoded = decode(body, ct);
  if (decoded === undefined) return lenient ? body : undefined;
  let text = decoded.text;
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let out: string | undefined;
  const sniffJson = ct === undefined && /^\s*[{[]/.test(text);
  if (ct?.kind === 'json' || sniffJson) out = p.json(text);
  if (out === undefined) {
    if (ct?.kind === 'json' && !lenient) return undefined;
    out = p.text(text);
  }
  return out === text ? body : decoded.encode(out);
}

/**
 * A response body protected whole: held (with the response head) until it ended, so a
 * refusal is still a 502 with a code and Content-Length is exact. Over `max` bytes it is
 * refused, or with onError: pass sent on unprotected from there.
 */
export function createBufferedTransform(o: { max: number; protect(body: Buffer): Buffer; oversize(): SidecarError | undefined }): BodyTransform {
  let chunks: Buffer[] = [];
  let size = 0;
  let passing = false;
  return {
    holdHead: true,
    push(chunk) {
      if (passing) return chunk;
      chunks.push(chunk);
      size += chunk.length;
      if (size <= o.max) return undefined;
      const refusal = o.oversize();
      if (refusal !== undefined) throw refusal;
      passing = true;
      const all = Buffer.concat(chunks, size);
      chunks = [];
      return all;
    },
    end: () => (passing ? undefined : o.protect(Buffer.concat(chunks, size))),
  };
}

/** A BodyTransform as a stream (request bodies; ClientBody counts and limits what comes in). */
export function transformStream(t: BodyTransform): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        done(null, t.push(chunk));
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        done(null, t.end());
      } catch (err) {
        done(err as Error);
      }
    },
  });
}
