import net from 'node:net';

const LF = 0x0a;
const CR = 0x0d;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Reads one HTTP/1.1 response without keeping its body: the status, the head's fields, and
 * how many body bytes arrived (chunked framing removed), with the moment the first body byte
 * was read. It touches only the chunk-size lines; body bytes are counted by length, never
 * scanned or copied. Enough for a load client that must cost as little CPU as possible.
 */
export class ResponseReader {
  status = 0;
  readonly headers: Record<string, string> = {};
  bodyBytes = 0;
  /** process.hrtime.bigint() when the first body byte was read. */
  firstBodyAt: bigint | undefined;
  done = false;
  #state: 'head' | 'length' | 'size' | 'data' | 'crlf' | 'trailer' = 'head';
  #head: Buffer | undefined;
  #remaining = 0;
  #line = '';
  #lineLength = 0;

  /** Feeds the bytes that arrived; true once the response is complete (bytes past it are an error). */
  push(chunk: Buffer): boolean {
    let buf = chunk;
    let i = 0;
    if (this.#state === 'head') {
      buf = this.#head === undefined ? chunk : Buffer.concat([this.#head, chunk]);
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > 64 * 1024) throw new Error('a response head larger than 64 KiB');
        this.#head = buf;
        return false;
      }
      this.#head = undefined;
      this.#parseHead(buf.toString('latin1', 0, end));
      i = end + 4;
      if (this.done) return this.#finish(buf, i);
    }
    while (i < buf.length && !this.done) {
      switch (this.#state) {
        case 'length':
        case 'data': {
          const take = Math.min(this.#remaining, buf.length - i);
          this.#count(take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) {
            if (this.#state === 'length') this.done = true;
            else [this.#state, this.#remaining] = ['crlf', 2];
          }
          break;
        }
        case 'crlf': {
          const take = Math.min(this.#remaining, buf.length - i);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = 'size';
          break;
        }
        case 'size': {
          const c = buf[i++]!;
          if (c !== LF) {
            this.#line += String.fromCharCode(c);
            if (this.#line.length > 1024) throw new Error('a chunk-size line longer than 1 KiB');
            break;
          }
          const size = Number.parseInt(this.#line.split(';')[0]!.trim(), 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`a bad chunk-size line: ${JSON.stringify(this.#line)}`);
          this.#line = '';
          if (size === 0) [this.#state, this.#lineLength] = ['trailer', 0];
          else [this.#state, this.#remaining] = ['data', size];
          break;
        }
        case 'trailer': {
          const c = buf[i++]!;
          if (c === LF) {
            if (this.#lineLength === 0) this.done = true;
            this.#lineLength = 0;
          } else if (c !== CR) this.#lineLength++;
          break;
        }
        case 'head':
          throw new Error('unreachable');
      }
    }
    return this.#finish(buf, i);
  }

  #finish(buf: Buffer, i: number): boolean {
    if (this.done && i < buf.length) throw new Error(`${buf.length - i} bytes after the end of the response`);
    return this.done;
  }

  #count(n: number): void {
    if (n === 0) return;
    if (this.bodyBytes === 0) this.firstBodyAt = process.hrtime.bigint();
    this.bodyBytes += n;
  }

  #parseHead(head: string): void {
    const lines = head.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (status === null) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
    this.status = Number(status[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) this.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    if (/\bchunked\b/i.test(this.headers['transfer-encoding'] ?? '')) this.#state = 'size';
    else if (this.headers['content-length'] !== undefined) {
      this.#remaining = Number(this.headers['content-length']);
      if (!Number.isSafeInteger(this.#remaining) || this.#remaining < 0)
        throw new Error(`a Content-Length that is not a length: ${JSON.stringify(this.headers['content-length'])}`);
      this.#state = 'length';
      if (this.#remaining === 0) this.done = true;
    } else throw new Error('a response with neither Content-Length nor chunked encoding (read to close): not supported');
  }
}

/**
 * One keep-alive HTTP/1.1 connection that sends a prepared request and counts the response's
 * body bytes (ResponseReader), one request at a time.
 */
export class RawHttpClient {
  readonly #socket: net.Socket;
  readonly #ready: Promise<void>;
  #reader: ResponseReader | undefined;
  #settle: ((err?: Error) => void) | undefined;

  constructor(host: string, port: number) {
    this.#socket = net.connect({ host, port, noDelay: true });
    this.#ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('error', reject);
    });
    this.#socket.on('data', (chunk: Buffer) => {
      const reader = this.#reader;
      if (reader === undefined) return this.#socket.destroy(new Error('bytes while no request was in flight'));
      try {
        if (reader.push(chunk)) this.#settle?.();
      } catch (err) {
        this.#settle?.(err as Error);
      }
    });
    this.#socket.on('error', (err) => this.#settle?.(err));
    this.#socket.on('close', () => this.#settle?.(new Error('the connection closed before the response ended')));
  }

  /** Sends `request` (a whole HTTP/1.1 request, keep-alive) and resolves once its response has ended. */
  async send(request: Buffer): Promise<ResponseReader> {
    await this.#ready;
    if (this.#reader !== undefined) throw new Error('one request at a time');
    const reader = (this.#reader = new ResponseReader());
    await new Promise<void>((resolve, reject) => {
      this.#settle = (err) => {
        this.#settle = undefined;
        this.#reader = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.#socket.write(request);
    });
    return reader;
  }

  close(): void {
    this.#settle = undefined;
    this.#socket.destroy();
  }
}

/** The bytes of a keep-alive POST with a body. */
export function rawPost(host: string, path: string, headers: Record<string, string>, body: string): Buffer {
  const b = Buffer.from(body);
  const lines = [`POST ${path} HTTP/1.1`, `host: ${host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${b.length}`, '', ''];
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), b]);
}
