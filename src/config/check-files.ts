import { readApiKeyFile } from '../auth/apikey-file.ts';
import { createCors } from '../cors/index.ts';
import { checkCapture } from '../egress/capture.ts';
import { loadTls } from '../ingress/tls.ts';
import { loadPolicyFile } from '../policy/index.ts';
import { loadKey } from '../protect/key-material.ts';
import { loadKeyRing } from '../protect/keyring.ts';
import { resolveSettings } from '../telemetry/settings.ts';
import type { SidecarConfig } from './schema.ts';

/**
 * Loads every file the configuration names with the same loaders `run` uses (policy, API
 * keys, TLS pair, protection keys) and builds the CORS rules and the egress capture, so
 * `validate` fails where `run` would.
 * Returns the warnings that do not stop a start (the policy's, and OTEL_* variables `run` would ignore).
 */
export async function checkConfigFiles(config: Readonly<SidecarConfig>): Promise<string[]> {
  const warnings = [...loadPolicyFile(config.policy.file).warnings];
  if (config.auth.apiKeys?.file !== undefined) await readApiKeyFile(config.auth.apiKeys.file);
  if (config.listen.tls !== undefined) loadTls(config.listen.tls);
  createCors(config.cors);
  const { keys, hashKey } = config.protection;
  if (keys.ring.length > 0 || keys.file !== undefined) await loadKeyRing(keys);
  if (hashKey !== undefined) await loadKey(hashKey, 'protection.hashKey', process.env);
  checkCapture(config);
  for (const w of resolveSettings(config.telemetry, process.env).warnings) warnings.push(`${w.message} [${w.code}]`);
  return warnings;
}
