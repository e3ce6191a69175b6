/**
 * Data protection: detectors (e-mail, phone, cards, IBAN, SSN, IPs, JWTs, bearer tokens,
 * well-known secrets, your own regexes) and field rules, with four actions (redact, hash,
 * encrypt, drop), compiled once from `protection` in the configuration and applied
 *
 * - to request and response bodies on protection.routes (the body stage; JSON, text, SSE
 *   event by event, NDJSON line by line; fail closed),
 * - to everything telemetry exports (spans, log records, metric attributes) and to the JSON
 *   lines on stdout,
 * - to LLM prompts, through `protectPrompt` (the hook the egress proxy calls).
 *
 * @example
 * const protection = await createProtection(config, logger);
 * protection.ruleSet('default').text('write to bob@example.com'); // 'write to [REDACTED:email]'
 * protection.protectPrompt({ messages: [{ role: 'user', content: 'my card is 4111 1111 1111 1111' }] });
 * // { messages: [{ role: 'user', content: 'my card is [REDACTED:card]' }] }
 */
import { unwatchFile, watchFile } from 'node:fs';
import type { SidecarConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { Stage } from '../core/index.ts';
import { protectLogger, type Logger } from '../log/index.ts';
import { createBodyStage } from './body/stage.ts';
import { createProtector, type Protector } from './engine.ts';
import { loadKey } from './key-material.ts';
import { createKeyRingHolder, type KeyRing, type KeyRingHolder } from './keyring.ts';
import type { FindingObserver } from './scan.ts';
import { createTelemetryProtection, type TelemetryProtection } from './telemetry.ts';

export { createProtector, type Protector, type ProtectorOptions } from './engine.ts';
export { createTelemetryProtection, type TelemetryProtection } from './telemetry.ts';
export { createKeyRing, createKeyRingHolder, loadKeyRing, readRingFile, writeRingFile, type KeyRing, type KeyRingHolder, type RingFile } from './keyring.ts';
export { decodeKey, deriveKey, KEY_BYTES } from './key-material.ts';
export { ENVELOPE_PATTERN, ENVELOPE_PREFIX } from './envelope.ts';
export { compileFieldRules, normalizeKey, type FieldMatcher } from './fields.ts';
export { isCardNumber, luhn } from './detect/index.ts';
export type { FindingObserver } from './scan.ts';
export { parseEvent, SseSplitter, type SseEvent } from './body/sse.ts';
export { protectThenCut, type ProtectText } from './capture.ts';
export { createFramedTransform, type FrameSplitter, type FramedOptions } from './body/framed.ts';
export { eventLines, withData, type EventLines } from './body/frames.ts';

export interface Protection {
  /** A compiled rule set of protection.rules; throws for an unknown name. */
  ruleSet(name: string): Protector;
  /** The rule set telemetry and stdout logs go through; undefined when protection.telemetry.enabled is false. */
  readonly telemetry: Protector | undefined;
  /** What the telemetry pipeline calls before export; undefined when off. */
  readonly telemetryExport: TelemetryProtection | undefined;
  /** The body stage for protection.routes; undefined when no route is configured. */
  readonly stage: Stage | undefined;
  /** The key ring of the encrypt action and of decryption; undefined without keys. */
  keys(): KeyRing | undefined;
  /**
   * The hook for LLM egress: a prompt (an Anthropic or OpenAI request body, parsed) protected
   * with a rule set, copy on write, so what leaves for the provider carries no protected value.
   * The caller decides what to do with a body it cannot parse; this one never throws for content.
   */
  protectPrompt(body: unknown, ruleSet?: string): unknown;
  /** The logger whose JSON lines are protected (the same logger when telemetry protection is off). */
  logger(base: Logger): Logger;
  /** Re-reads the key ring file and key files (SIGHUP, and a change of the ring file); a ring that does not load is refused and the running one stays. */
  reload(): Promise<void>;
  /** Stops watching the key ring file. */
  close(): void;
  /** For the startup line. */
  readonly describe: string;
}

export interface ProtectionOptions {
  env?: NodeJS.ProcessEnv;
  /** Counts protected values by label (the redact CLI's --stats). */
  observe?: FindingObserver;
  /** Re-read the key ring file when it changes (the running sidecar; not the CLIs). */
  watch?: boolean;
}

/**
 * Builds data protection from the configuration: loads the keys (a bad key stops the start with
 * SIDECAR_PROTECTION_KEYS_INVALID), compiles each rule set once.
 */
export async function createProtection(config: Readonly<SidecarConfig>, logger: Logger, options: ProtectionOptions = {}): Promise<Protection> {
  const p = config.protection;
  const env = options.env ?? process.env;
  const holder: KeyRingHolder | undefined = p.keys.ring.length > 0 || p.keys.file !== undefined ? await createKeyRingHolder(p.keys, env) : undefined;
  const hashKey = p.hashKey === undefined ? undefined : await loadKey(p.hashKey, 'protection.hashKey', env);
  const keys = () => holder?.current();
  const sets = new Map<string, Protector>();
  for (const [name, rules] of Object.entries(p.rules)) sets.set(name, createProtector(rules, { ring: keys, hashKey, observe: options.observe }));
  const ruleSet = (name: string): Protector => {
    const set = sets.get(name);
    if (set === undefined) throw new SidecarError('SIDECAR_USAGE_INVALID', { message: `no rule set named ${name} in protection.rules` });
    return set;
  };
  const telemetry = p.telemetry.enabled ? ruleSet(p.telemetry.rules) : undefined;
  const stage =
    p.routes.length === 0
      ? undefined
      : createBodyStage({ routes: p.routes, ruleSet, maxBodyBytes: p.maxBodyBytes, limitBodyBytes: config.limits.maxBodyBytes, logger });
  const ring = holder?.current();
  const parts = [
    p.routes.length === 0 ? 'bodies off' : `bodies on ${p.routes.length} route${p.routes.length === 1 ? '' : 's'}`,
    telemetry === undefined ? 'telemetry off' : `telemetry rules ${p.telemetry.rules}`,
    ring === undefined ? 'no encryption keys' : `active key ${ring.activeId} of ${ring.ids.length}`,
  ];
  const reload = async () => {
    if (holder === undefined) return;
    try {
      await holder.reload();
      const now = holder.current();
      logger.info({ event_type: 'protection_keys_reload', active_key: now.activeId, keys: now.ids.length }, `protection keys reloaded: active ${now.activeId}`);
    } catch (err) {
      logger.error({ err, event_type: 'protection_keys_reload' }, 'protection key reload refused; the running keys stay');
    }
  };
  const ringFile = p.keys.file;
  const onRingChange = () => void reload();
  if (ringFile !== undefined && options.watch) watchFile(ringFile, { interval: 500, persistent: false }, onRingChange);
  return {
    ruleSet,
    telemetry,
    telemetryExport: telemetry === undefined ? undefined : createTelemetryProtection(telemetry),
    stage,
    keys,
    protectPrompt: (body, name = 'default') => ruleSet(name).value(body),
    logger: (base) => (telemetry === undefined ? base : protectLogger(base, telemetry)),
    reload,
    close() {
      if (ringFile !== undefined && options.watch) unwatchFile(ringFile, onRingChange);
    },
    describe: parts.join(', '),
  };
}
