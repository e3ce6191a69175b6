import type { IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import zlib from 'node:zlib';
import { createParser, type EventSourceParser } from 'eventsource-parser';
import { SseFrames } from './sse-frames.ts';
import type { UsageReader } from './usage.ts';

/** A JSON body larger than this is passed on but not read (no usage then). */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** One event's data larger than this stops reading the stream (it still passes on whole). */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * Reads a response as it passes to the agent: the bytes are never changed or held, a copy
 * goes through decompression (when the provider compressed it) into an incremental SSE
 * parser or a bounded JSON buffer, and the usage reader sees the events. The one exception is
 * `strip`: the sidecar added include_usage to the request, the stream goes out event by
 * event and the usage chunk the agent never asked for is left out.
 */
export interface ResponseTee {
  /**
   * True when the tee decides what reaches the agent (stripping): the chunk goes through
   * push() first. Otherwise the chunk is written to the agent first and read after, so that
   * reading never delays a byte.
   */
  readonly holds: boolean;
  /** The bytes to write to the agent for this chunk (the chunk itself unless stripping). */
  push(chunk: Buffer): Buffer | undefined;
  /** The provider's response ended: what is left to write, and when reading is done. */
  end(): { tail: Buffer | undefined; read: Promise<void> };
  /** The response was cut: read what arrived, no more. */
  abort(): Promise<void>;
}

export function createTee(headers: IncomingHttpHeaders, reader: UsageReader, strip: boolean, onProblem: (what: string) => void): ResponseTee {
  const type = String(headers['content-type'] ?? '').toLowerCase();
  const kind = type.startsWith('text/event-stream') ? 'sse' : type.includes('json') ? 'json' : 'none';
  const encoding = String(headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (kind === 'none') return passThrough;
  const decompress = decompressor(encoding);
  if (decompress === null) {
    onProblem(`content-encoding ${encoding}`);
    return passThrough;
  }

  let sink: { write(text: Buffer): void; done(): void };
  let parser: EventSourceParser | undefined;
  let dropNext = false;
  if (kind === 'sse') {
    const decoder = new StringDecoder('utf8');
    let broken = false;
    parser = createParser({
      maxBufferSize: MAX_EVENT_BYTES,
      onEvent: (e) => {
        dropNext = reader.event(e.event, e.data) || dropNext;
      },
    });
    const feed = (text: string) => {
      if (broken) return;
      try {
        parser!.feed(text);
      } catch {
        broken = true;
        onProblem('an event larger than the parser allows');
      }
    };
    sink = { write: (b) => feed(decoder.write(b)), done: () => feed(`${decoder.end()}\n\n`) };
  } else {
    const parts: Buffer[] = [];
    let size = 0;
    sink = {
      write(b) {
        size += b.length;
        if (size <= MAX_JSON_BYTES) parts.push(b);
      },
      done() {
        if (size > MAX_JSON_BYTES) return onProblem('a JSON body larger than 16 MiB');
        try {
          reader.json(JSON.parse(Buffer.concat(parts, size).toString('utf8')));
        } catch {
          onProblem('a body that is not JSON');
        }
      },
    };
  }

  let finished: Promise<void> = Promise.resolve();
  let write = (b: Buffer) => sink.write(b);
  let close = () => sink.done();
  if (decompress !== undefined) {
    const z = decompress();
    z.on('data', (b: Buffer) => sink.write(b));
    finished = new Promise((resolve) => {
      z.once('end', () => (sink.done(), resolve()));
      z.once('error', () => (onProblem(`a ${encoding} body that does not decompress`), sink.done(), resolve()));
    });
    write = (b) => void z.write(b);
    close = () => void z.end();
  }
  // Stripping is only ever asked for on uncompressed streams (the request asked for identity).
  const frames = strip && kind === 'sse' && decompress === undefined ? new SseFrames() : undefined;

  return {
    holds: frames !== undefined,
    push(chunk) {
      if (frames === undefined) {
        write(chunk);
        return chunk;
      }
      const out: Buffer[] = [];
      const wasPassing = frames.passthrough;
      const complete = frames.push(chunk);
      if (!wasPassing && frames.passthrough) onProblem('an event that never ends (no blank line within 64 KiB): passed on unchanged, usage chunk included');
      for (const frame of complete) {
        dropNext = false;
        write(frame);
        if (!dropNext) out.push(frame);
      }
      return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
    },
    end() {
      const tail = frames?.rest();
      if (tail !== undefined) write(tail);
      close();
      return { tail, read: finished };
    },
    abort() {
      const tail = frames?.rest();
      if (tail !== undefined) write(tail);
      close();
      return finished;
    },
  };
}

const passThrough: ResponseTee = {
  holds: false,
  push: (chunk) => chunk,
  end: () => ({ tail: undefined, read: Promise.resolve() }),
  abort: () => Promise.resolve(),
};

type Decompress = () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | zlib.ZstdDecompress;

/** undefined: identity; null: an encoding that cannot be read. */
function decompressor(encoding: string): Decompress | undefined | null {
  // Flushed as they go, so that a cut stream still yields what arrived.
  const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  switch (encoding) {
    case 'identity':
    case '':
      return undefined;
    case 'gzip':
    case 'x-gzip':
      return () => zlib.createGunzip(flush);
    case 'deflate':
      return () => zlib.createInflate(flush);
    case 'br':
      return () => zlib.createBrotliDecompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
    case 'zstd':
      return () => zlib.createZstdDecompress();
    default:
      return null;
  }
}
