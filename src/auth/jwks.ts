import { request } from 'undici';
import type { Logger } from '../log/index.ts';
import { importJwks, type VerificationKey } from './keys.ts';

export interface JwksSourceOptions {
  url: string;
  /** Background refetch interval (ms). */
  refreshMs: number;
  /** Unknown-kid refetches happen at most once per this long (ms). */
  cooldownMs: number;
  /** One fetch, connect to last byte (ms). */
  timeoutMs: number;
  logger: Logger;
  now?: () => number;
  /** False: fetch nothing until refresh() is called (validate builds the source without contacting the provider). */
  start?: boolean;
}

/** A remote JWKS that keeps its last good keys. */
export interface JwksSource {
  /** The last good keys; empty until a fetch has succeeded. */
  keys(): readonly VerificationKey[];
  /** True once a fetch has produced keys. */
  readonly loaded: boolean;
  /** Refetch now unless one was attempted within the cooldown; resolves when done. */
  refreshSoon(): Promise<void>;
  /** Refetch now (joins a fetch in flight). */
  refresh(): Promise<void>;
  /** Why no keys are loaded, or undefined when they are. */
  problem(): string | undefined;
  /** How many fetches were attempted (for tests and metrics). */
  readonly fetches: number;
  close(): void;
}

// A JWKS is a few kilobytes; a bigger body is not one we want to parse.
const MAX_JWKS_BYTES = 1024 * 1024;

/**
 * A small JWKS cache. Unlike jose's createRemoteJWKSet, a failed or junk refetch never
 * drops the keys in hand: an identity provider outage must not turn into a sidecar
 * outage for tokens signed by keys we already know. Fetches start at creation and run
 * in the background every `refreshMs` (timers unref'd); an unknown kid asks for a
 * refetch, granted at most once per `cooldownMs` so that random kids cannot make us
 * hammer the provider.
 */
export function createJwksSource(options: JwksSourceOptions): JwksSource {
  const { url, refreshMs, cooldownMs, timeoutMs, logger } = options;
  const now = options.now ?? Date.now;
  let current: readonly VerificationKey[] = [];
  let loaded = false;
  let lastError: string | undefined = 'not fetched yet';
  let lastAttempt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  let fetches = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function fetchOnce(): Promise<void> {
    fetches += 1;
    lastAttempt = now();
    try {
      const res = await request(url, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > MAX_JWKS_BYTES) {
        await res.body.dump();
        throw new Error(`body of ${declared} bytes is too large`);
      }
      let size = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_JWKS_BYTES) throw new Error('body is too large');
        chunks.push(chunk);
      }
      const { keys, problems } = importJwks(JSON.parse(Buffer.concat(chunks).toString('utf8')), url);
      if (keys.length === 0) throw new Error(problems.length > 0 ? problems.join('; ') : 'the JWKS holds no signing key');
      if (problems.length > 0) logger.warn({ event_type: 'jwks', url, problems }, 'some JWKS keys were skipped');
      current = keys;
      loaded = true;
      lastError = undefined;
      logger.debug({ event_type: 'jwks', url, keys: keys.length }, 'JWKS loaded');
    } catch (err) {
      lastError = (err as Error).message;
      logger.warn({ event_type: 'jwks', url, error: lastError, keeping: current.length }, 'JWKS fetch failed; keeping the last good keys');
    }
  }

  function refresh(): Promise<void> {
    inFlight ??= fetchOnce().finally(() => {
      inFlight = undefined;
      schedule();
    });
    return inFlight;
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    // Until the first success, retry at the cooldown pace rather than waiting a full refresh.
    const delay = loaded ? refreshMs : Math.min(refreshMs, Math.max(cooldownMs, 1000));
    timer = setTimeout(() => void refresh(), delay);
    timer.unref();
  }

  if (options.start !== false) void refresh();

  return {
    keys: () => current,
    get loaded() {
      return loaded;
    },
    get fetches() {
      return fetches;
    },
    refresh,
    refreshSoon() {
      if (inFlight) return inFlight;
      if (now() - lastAttempt < cooldownMs) return Promise.resolve();
      return refresh();
    },
    problem: () => (loaded ? undefined : `JWKS ${url} is not loaded: ${lastError ?? 'unknown error'}`),
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
