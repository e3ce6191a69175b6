import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import bytes from 'bytes';

/**
 * The largest file of each kind the sidecar reads. Each is far above what a real file of
 * that kind holds, and small enough that a wrong path (a log file, a disk image) is refused
 * at once instead of filling memory.
 */
export const FILE_LIMITS = {
  /** The configuration file. */
  config: 1024 * 1024,
  /** The RBAC policy file. */
  policy: 1024 * 1024,
  /** The API key file: about 200 bytes a key, so some 80,000 keys. */
  apiKeys: 16 * 1024 * 1024,
  /** A JWT verification key file (PEM, JWK, JWKS): the cap of a fetched JWKS. */
  jwtKey: 1024 * 1024,
  /** A TLS certificate chain or private key. */
  tls: 1024 * 1024,
  /** A protection key file: 32 bytes as text. */
  protectionKey: 64 * 1024,
  /** A protection key ring file. */
  keyRing: 1024 * 1024,
  /** An LLM provider's API key file: some hundred bytes. */
  credential: 64 * 1024,
  /** Manifests or a compose file given to inject (a file or stdin). */
  inject: 16 * 1024 * 1024,
} as const;

/** Why a file was not read; its message is the reason alone (the caller names the file and the key). */
export class FileReadError extends Error {
  override readonly name = 'FileReadError';
  readonly reason: 'not_regular' | 'too_large' | 'unreadable';
  /** The system's error code (ENOENT, EACCES) when the file could not be opened or read. */
  readonly code: string | undefined;
  constructor(reason: FileReadError['reason'], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.code = (cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

// O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one
// (it is then refused as not a regular file); for regular files the flag changes nothing.
const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

function check(s: Stats, maxBytes: number): void {
  if (!s.isFile()) throw new FileReadError('not_regular', `not a regular file (${kindOf(s)})`);
  if (s.size > maxBytes) throw tooLarge(maxBytes);
}

const tooLarge = (maxBytes: number) =>
  new FileReadError('too_large', `larger than the ${bytes.format(maxBytes, { unitSeparator: ' ' })} allowed for this file`);

function unreadable(cause: unknown): FileReadError {
  return cause instanceof FileReadError ? cause : new FileReadError('unreadable', (cause as Error).message, cause);
}

/**
 * Reads a whole file, refusing anything that is not a regular file (a device such as
 * /dev/zero, a FIFO, a directory) and anything over `maxBytes`, checked before reading and
 * while reading (a file that grows). Throws FileReadError; never hangs.
 */
export function readFileCapped(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (cause) {
    throw unreadable(cause);
  }
  try {
    check(fstatSync(fd), maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw tooLarge(maxBytes);
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } catch (cause) {
    throw unreadable(cause);
  } finally {
    closeSync(fd);
  }
}

/** readFileCapped, as UTF-8 text. */
export function readTextCapped(path: string, maxBytes: number): string {
  return readFileCapped(path, maxBytes).toString('utf8');
}

/** readFileCapped without blocking the event loop, as UTF-8 text. */
export async function readTextCappedAsync(path: string, maxBytes: number): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, FLAGS);
  } catch (cause) {
    throw unreadable(cause);
  }
  try {
    check(await handle.stat(), maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (cause) {
    throw unreadable(cause);
  } finally {
    await handle.close();
  }
}

/** Reads a stream (stdin) whole, refusing more than `maxBytes`. */
export async function readStreamCapped(stream: NodeJS.ReadableStream, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += b.length;
    if (total > maxBytes) throw tooLarge(maxBytes);
    chunks.push(b);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}
