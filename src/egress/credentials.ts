import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { CredentialConfig, EgressConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readTextCapped } from '../files/index.ts';
import type { Logger } from '../log/index.ts';

/** A provider of egress.providers (providers.ts names the same set). */
type ProviderName = keyof EgressConfig['providers'];

/**
 * A provider's API key held by the sidecar (egress.providers.<name>.credential). The agent
 * never holds it: every call to the provider goes out with it, and the agent's own
 * credential headers are dropped.
 */
export interface HeldCredential {
  /** `env NAME` or `file PATH`: what logs and the startup line say, never the value. */
  readonly source: string;
  /** The variable the key is read from, which the agent must not inherit. */
  readonly env: string | undefined;
  /** The provider's own header with the key in force, e.g. ['x-api-key', key]. Read once per call. */
  header(): readonly [name: string, value: string];
  /** Re-reads a file credential (SIGHUP). A file that fails keeps the key in force; false then. */
  reload(): boolean;
  /** Stops watching the file; safe to call twice. */
  close(): void;
}

export interface HoldOptions {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** False: read once and watch nothing (validate). */
  watch: boolean;
  /** Polling interval of the file watch, in ms. */
  intervalMs?: number | undefined;
}

/** The credential headers an agent may send; with a held credential, none of them leaves. */
export const AGENT_CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'x-api-key', 'api-key']);

// An API key is one token of printable ASCII; anything else cannot be the key (a file holding
// a PEM, a JSON document) or cannot go in a header (CR, LF, NUL).
const KEY = /^[\x21-\x7e]+$/;

const unavailable = (message: string, cause?: unknown) => new SidecarError('SIDECAR_CREDENTIAL_UNAVAILABLE', { message, cause });

function parseKey(text: string, where: string): string {
  const key = text.trim();
  if (key === '') throw unavailable(`${where} holds no key (it is empty)`);
  if (!KEY.test(key)) throw unavailable(`${where} does not hold one key: expected a single line of printable ASCII without spaces`);
  return key;
}

function headerOf(provider: ProviderName, key: string): readonly [string, string] {
  return Object.freeze(provider === 'anthropic' ? (['x-api-key', key] as const) : (['authorization', `Bearer ${key}`] as const));
}

/**
 * Reads the key once (a key that cannot be read throws SIDECAR_CREDENTIAL_UNAVAILABLE: the
 * sidecar must not start without it) and keeps a file's key current. The file is polled, not
 * watched with fs.watch: polling stats the path, so the symlink swap of a Kubernetes secret
 * volume (..data -> a new directory) and an editor's rename over the file are both seen, where
 * an fs.watch handle stays on the replaced inode.
 */
export function holdCredential(provider: ProviderName, config: CredentialConfig, o: HoldOptions): HeldCredential {
  const keyPath = `egress.providers.${provider}.credential`;
  if (config.env !== undefined) {
    const name = config.env;
    const value = o.env[name];
    if (value === undefined || value === '') throw unavailable(`${keyPath}: the environment variable ${name} is not set; set it, or use { file: PATH }`);
    const header = headerOf(provider, parseKey(value, `${keyPath}: the environment variable ${name}`));
    return { source: `env ${name}`, env: name, header: () => header, reload: () => true, close() {} };
  }
  const file = config.file!;
  const read = (): string => {
    let text: string;
    try {
      text = readTextCapped(file, FILE_LIMITS.credential);
    } catch (cause) {
      throw unavailable(`${keyPath}: cannot read ${file}: ${(cause as Error).message}`, cause);
    }
    return parseKey(text, `${keyPath}: ${file}`);
  };
  let key = read();
  let header = headerOf(provider, key);
  // One line per failure, not one per poll or signal while the file stays broken.
  let failing = false;
  const fields = { event_type: 'credential_reload', provider, file };

  const refused = (message: string) => {
    if (failing) return;
    failing = true;
    o.logger.error({ ...fields, error_type: 'SIDECAR_CREDENTIAL_UNAVAILABLE', error: message }, `${provider} credential not reloaded; the key in force stays`);
  };
  const reload = (): boolean => {
    let next: string;
    try {
      next = read();
    } catch (err) {
      refused((err as Error).message);
      return false;
    }
    failing = false;
    if (next === key) return true;
    key = next;
    // One reference assignment: a call that already built its headers keeps the old key.
    header = headerOf(provider, key);
    o.logger.info(fields, `${provider} credential reloaded from file ${file}`);
    return true;
  };

  let settle: NodeJS.Timeout | undefined;
  const onChange = (curr: Stats, prev: Stats) => {
    if (curr.nlink === 0 && curr.mtimeMs === 0) {
      // Removed, or between the steps of a replacement: the next stat that finds it reloads.
      refused(`${keyPath}: ${file} is missing`);
      return;
    }
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    // A short settle so that a file still being written is read once, complete.
    clearTimeout(settle);
    settle = setTimeout(reload, 50).unref();
  };
  if (o.watch) watchFile(file, { interval: o.intervalMs ?? 1000, persistent: false }, onChange);
  let closed = false;
  return {
    source: `file ${file}`,
    env: undefined,
    header: () => header,
    reload,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(settle);
      if (o.watch) unwatchFile(file, onChange);
    },
  };
}

/** The credentials of the enabled providers that have one; if one cannot be read, none is held. */
export function holdCredentials(config: EgressConfig, o: HoldOptions): Partial<Record<ProviderName, HeldCredential>> {
  const held: Partial<Record<ProviderName, HeldCredential>> = {};
  try {
    for (const name of ['anthropic', 'openai'] as const) {
      const p = config.providers[name];
      if (p.enabled && p.credential !== undefined) held[name] = holdCredential(name, p.credential, o);
    }
  } catch (err) {
    for (const c of Object.values(held)) c.close();
    throw err;
  }
  return held;
}
