import { isAscii } from 'node:buffer';
import type { IncomingHttpHeaders } from 'node:http';
import zlib from 'node:zlib';
import { parseEvent, SseSplitter } from '../protect/index.ts';
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
  const encoding = String(headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  if (kind === 'none') return passThrough;
  const decompress = decompressor(encoding);
  if (decompress === null) {
    onProblem(`content-encoding ${encoding}`);
    return passThrough;
  }

  let sink: { write(text: Buffer): void; done(): void };
  let dropNext = false;
  if (kind === 'sse') {
    const events = new SseSplitter();
    let first = true;
    let broken = false;
    let flat = true;
    const read = (type: string | undefined, data: string) => {
      dropNext = reader.event(type, data) || dropNext;
    };
    const decode = (buf: Buffer, start: number, end: number) => {
      // A stream may start with a byte order mark (WHATWG 9.2.6).
      if (first && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) start += 3;
      first = false;
      const e = parseEvent(buf.toString('utf8', start, end));
      if (e !== undefined) read(e.type, e.data);
    };
    sink = {
      write(b) {
        if (broken) return;
        // The chunk's text when each byte is a character of it (ASCII, what providers mostly
        // send): decoded once, the splitter reads the events' fields in it. Otherwise, and for an
        // event begun in an earlier chunk, each event is decoded on its own. A chunk is decoded
        // straight away unless the last one was not flat: then isAscii asks first, so that a
        // stream of other text is not decoded twice.
        let text: string | undefined;
        if (flat) {
          text = b.toString();
          if (text.length !== b.length) text = undefined;
        } else if (isAscii(b)) text = b.toString('latin1');
        flat = text !== undefined;
        events.push(b, text);
        while (events.next()) {
          if (!events.parsed) decode(events.buffer, events.start, events.contentEnd);
          else {
            first = false;
            if (events.data !== undefined) read(events.type, events.data);
          }
        }
        if (events.held > MAX_EVENT_BYTES) {
          broken = true;
          events.take();
          onProblem('an event larger than the parser allows');
        }
      },
      done() {
        // An event the stream did not end with a blank line is still read.
        const rest = broken ? undefined : events.take();
        if (rest !== undefined) decode(rest, 0, rest.length);
      },
    };
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
