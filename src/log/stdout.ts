import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Where the sidecar's JSON lines go: stdout, in batches, and never in a way that can hold
 * the process. Lines gather up to BATCH_BYTES (one system call per batch, not per line:
 * the access line of every request otherwise costs a write each) and never wait longer
 * than FLUSH_MS.
 *
 * What a reader of stdout can do to a writer, and what happens here:
 * - it goes away (`agent-sidecar run | jq`, then Ctrl-C; a log shipper dies): the next
 *   write fails with EPIPE (or EBADF, ECONNRESET…); from then on lines are dropped, and
 *   nothing is ever retried;
 * - it stops reading but keeps the pipe open: writes never block. Pipes and sockets are
 *   written without blocking (Node's own stdout stream over libuv, or for a FIFO a
 *   descriptor of our own opened O_NONBLOCK, so that an agent started with `run --`, which
 *   shares stdout, keeps a blocking one); what the reader has not taken waits in memory up
 *   to MAX_QUEUED_BYTES, and lines past that are dropped and counted, with one line
 *   saying how many once the reader is back;
 * - at exit, what is still buffered gets one write that does not wait: a healthy reader
 *   gets everything, a stalled or gone one costs nothing. flush() before exiting waits
 *   for a slow reader, as long as its caller allows.
 *
 * pino's own destination (sonic-boom) retries a failing write at exit in a loop that only
 * EAGAIN can leave, and with EPIPE or EBADF that loop never ends.
 */
export interface StdoutDestination {
  write(line: string): boolean;
  /** Writes what is buffered; resolves once stdout took it all, stdout is gone, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  /** At exit: hands what is buffered to stdout in one write that does not wait. */
  flushSync(): void;
  /**
   * A child started with this stdout inherited (`run -- <command>`) has set a shared
   * descriptor back to blocking (libuv does so in every child): make it non-blocking again.
   */
  afterSpawn(): void;
  /** Lines dropped so far because stdout was gone or did not keep up. */
  readonly dropped: number;
  /** True once stdout is gone. */
  readonly closed: boolean;
}

const BATCH_BYTES = 8 * 1024;
const FLUSH_MS = 100;
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

let shared: StdoutDestination | undefined;

/** The process's one stdout destination (one stdout, one buffer, one exit hook). */
export function stdoutDestination(): StdoutDestination {
  shared ??= createStdoutDestination(openStdout());
  return shared;
}

/**
 * Before exiting: writes what stdout's buffer holds and waits for the reader to take it,
 * for at most `timeoutMs` (a reader that is gone or stalled is not waited for longer).
 */
export async function flushStdout(timeoutMs: number): Promise<void> {
  await shared?.flush(timeoutMs);
}

/** The writable stream behind fd 1, or undefined when there is no stdout at all. */
function openStdout(): Writable | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(1);
  } catch {
    return undefined; // fd 1 closed (`agent-sidecar run >&-`).
  }
  if (stat.isFIFO()) {
    try {
      // A description of our own: non-blocking without changing the one a child inherits.
      const fd = fs.openSync('/proc/self/fd/1', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      const socket = new net.Socket({ fd, readable: false, writable: true });
      socket.unref();
      return socket;
    } catch (err) {
      // ENXIO: nobody reads the pipe any more. Anything else (no /proc): Node's stdout.
      if ((err as NodeJS.ErrnoException).code === 'ENXIO') return undefined;
    }
  }
  // Node's stdout: a file is written synchronously, a socket without blocking, a terminal as Node does.
  return process.stdout;
}

export function createStdoutDestination(stream: Writable | undefined): StdoutDestination {
  let batch: string[] = [];
  let batchBytes = 0;
  let closed = stream === undefined;
  let dropped = 0;
  // Lines dropped while the reader did not keep up, not yet reported.
  let unreported = 0;

  const timer = setInterval(() => {
    if (batchBytes > 0) push();
  }, FLUSH_MS);
  timer.unref();

  function close(): void {
    if (closed) return;
    closed = true;
    dropped += batch.length;
    batch = [];
    batchBytes = 0;
    clearInterval(timer);
  }

  function push(): void {
    if (closed || batchBytes === 0) return;
    const lines = batch;
    batch = [];
    batchBytes = 0;
    if (stream!.writableLength > MAX_QUEUED_BYTES) {
      dropped += lines.length;
      unreported += lines.length;
      return;
    }
    let data = lines.length === 1 ? lines[0]! : lines.join('');
    if (unreported > 0) {
      data = `${droppedLine(unreported)}${data}`;
      unreported = 0;
    }
    try {
      stream!.write(data);
    } catch {
      // A stream that throws rather than emitting 'error' (a file on a full disk): the same.
      close();
    }
  }

  if (stream !== undefined) {
    stream.on('error', close);
    stream.on('close', close);
  }

  return {
    write(line) {
      if (closed) {
        dropped++;
        return true;
      }
      batch.push(line);
      batchBytes += line.length;
      if (batchBytes >= BATCH_BYTES) push();
      return true;
    },
    async flush(timeoutMs) {
      push();
      if (closed || stream!.writableLength === 0) return;
      const ac = new AbortController();
      await Promise.race([
        once(stream!, 'drain', { signal: ac.signal }).catch(() => {}),
        once(stream!, 'close', { signal: ac.signal }).catch(() => {}),
        sleep(timeoutMs, undefined, { ref: false, signal: ac.signal }).catch(() => {}),
      ]);
      ac.abort();
    },
    flushSync() {
      // One write: on a pipe or socket it does not wait (what the kernel does not take now
      // is lost with the process), a file takes it at once.
      push();
    },
    afterSpawn() {
      const handle = (stream as unknown as { _handle?: { setBlocking?: (blocking: boolean) => number } } | undefined)?._handle;
      if (stream === process.stdout && handle?.setBlocking !== undefined && !(process.stdout as { isTTY?: boolean }).isTTY) handle.setBlocking(false);
    },
    get dropped() {
      return dropped;
    },
    get closed() {
      return closed;
    },
  };
}

function droppedLine(count: number): string {
  const message = `stdout did not keep up: ${count} log line${count === 1 ? '' : 's'} dropped`;
  return `{"level":"warn","time":"${new Date().toISOString()}","logger":"agent-sidecar","event_type":"log_lines_dropped","dropped":${count},"message":"${message}"}\n`;
}
