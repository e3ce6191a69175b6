import { readApiKeyFile } from '../auth/apikey-file.ts';
import { createCors } from '../cors/index.ts';
import { loadTls } from '../ingress/tls.ts';
import { loadPolicyFile } from '../policy/index.ts';
import type { SidecarConfig } from './schema.ts';

/**
 * Loads every file the configuration names with the same loaders `run` uses (policy, API
 * keys, TLS pair) and builds the CORS rules, so `validate` fails where `run` would.
 * Returns the warnings that do not stop a start.
 */
export async function checkConfigFiles(config: Readonly<SidecarConfig>): Promise<string[]> {
  const warnings = [...loadPolicyFile(config.policy.file).warnings];
  if (config.auth.apiKeys?.file !== undefined) await readApiKeyFile(config.auth.apiKeys.file);
  if (config.listen.tls !== undefined) loadTls(config.listen.tls);
  createCors(config.cors);
  return warnings;
}
