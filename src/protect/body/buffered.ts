import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import { SidecarError } from '../../errors/index.ts';
import type { BodyTransform } from '../../ingress/context.ts';
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

/** Reads a request body up to `cap` bytes; `complete` is false when it stopped there (the stream is paused). */
export function readBody(req: IncomingMessage, cap: number): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onAbort);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > cap) {
        cleanup();
        req.pause();
        resolve({ body: Buffer.concat(chunks, size), complete: false });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ body: Buffer.concat(chunks, size), complete: true });
    };
    const onAbort = (cause?: unknown) => {
      cleanup();
      reject(new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: 'The request body ended early or failed.', cause }));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onAbort);
    req.once('close', onAbort);
  });
}

/** What was read, then the rest of the stream, failing with 413 past limits.maxBodyBytes (0: none). */
export function concatRest(head: Buffer, rest: IncomingMessage, limit: number, count: (n: number) => void): Readable {
  let total = head.length;
  return Readable.from(
    (async function* () {
      yield head;
      for await (const chunk of rest as AsyncIterable<Buffer>) {
        total += chunk.length;
        count(chunk.length);
        if (limit > 0 && total > limit) throw new SidecarError('SIDECAR_BODY_TOO_LARGE');
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
}

/** A BodyTransform as a stream (request bodies), failing with 413 past limits.maxBodyBytes (0: none). */
export function transformStream(t: BodyTransform, limit: number, count: (n: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      total += chunk.length;
      count(chunk.length);
      if (limit > 0 && total > limit) {
        done(new SidecarError('SIDECAR_BODY_TOO_LARGE'));
        return;
      }
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
