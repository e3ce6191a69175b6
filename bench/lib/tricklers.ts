// The slow clients of the slow-client benchmark, run as their own process so that their
// sockets do not share an event loop with the client that measures latency:
//   node bench/lib/tricklers.ts <json options>
// Keeps `clients` connections trickling for `durationMs` (each reconnects once answered), then
// prints one JSON line: every answer's status and how long it took.
import net from 'node:net';

export type TrickleKind = 'declared-short' | 'declared-long' | 'chunked' | 'streaming' | 'slowloris';

export interface TricklerOptions {
  host: string;
  port: number;
  clients: number;
  kinds: TrickleKind[];
  /** One byte every this many ms. */
  everyMs: number;
  durationMs: number;
  /** Connections open over this long at the start, not all in one burst. */
  rampMs: number;
  /** A connection not answered after this long is counted as unanswered and dropped. */
  giveUpMs: number;
}

/** One trickling connection's end. */
export interface TrickleResult {
  kind: TrickleKind;
  /** The status of the answer; 0 when the connection closed with none, -1 when it was given up. */
  status: number;
  code: string | undefined;
  /** From the last byte sent to the answer (a body's idle time). */
  sinceLastByteMs: number;
  /** From the connection's start to the answer (a head's whole time). */
  sinceStartMs: number;
}

const HEADS: Record<TrickleKind, { head: string; byte: string }> = {
  // Under limits.bufferBodyBytes (64 KiB), over it, and of unknown length.
  'declared-short': { head: 'POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n', byte: 'x' },
  'declared-long': { head: 'POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n', byte: 'x' },
  chunked: { head: 'POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n', byte: '1\r\nx\r\n' },
  // 70 kB at once, past the buffer, so that the body streams to the upstream; then a trickle.
  streaming: {
    head: `POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n${'x'.repeat(70_000)}`,
    byte: 'x',
  },
  // A head that never ends: one more header byte at a time.
  slowloris: { head: 'GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: ', byte: 'a' },
};

function once(o: TricklerOptions, kind: TrickleKind): Promise<TrickleResult> {
  const { head, byte } = HEADS[kind];
  return new Promise((resolve) => {
    const started = performance.now();
    let last = started;
    let text = '';
    const socket = net.connect({ host: o.host, port: o.port });
    const timer = setInterval(() => {
      if (socket.writable) {
        socket.write(byte);
        last = performance.now();
      }
    }, o.everyMs);
    socket.on('connect', () => {
      socket.write(head);
      last = performance.now();
    });
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    let done = false;
    const end = (gaveUp: boolean) => {
      if (done) return;
      done = true;
      const now = performance.now();
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      const status = gaveUp ? -1 : Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ kind, status, code: /"code":"(\w+)"/.exec(text)?.[1], sinceLastByteMs: now - last, sinceStartMs: now - started });
    };
    socket.once('close', () => end(false));
    const giveUp = setTimeout(() => end(true), o.giveUpMs);
  });
}

async function client(o: TricklerOptions, kind: TrickleKind, delayMs: number, until: number, out: TrickleResult[]): Promise<void> {
  await new Promise((r) => setTimeout(r, delayMs));
  while (performance.now() < until) out.push(await once(o, kind));
}

const o = JSON.parse(process.argv[2] ?? '{}') as TricklerOptions;
const results: TrickleResult[] = [];
const until = performance.now() + o.durationMs;
await Promise.all(Array.from({ length: o.clients }, (_, n) => client(o, o.kinds[n % o.kinds.length]!, (n / o.clients) * o.rampMs, until, results)));
process.stdout.write(`${JSON.stringify(results)}\n`);
