import { parse as parseYamlScalar } from 'yaml';
import { SidecarError } from '../errors/index.ts';

// ${env:NAME} or ${env:NAME:-default}; $${ escapes a literal ${.
const REF = /\$(\$?)\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/;

/**
 * Substitutes environment references in every string of a parsed document. A value that is
 * one whole reference takes the type its text has in YAML (so `port: ${env:PORT}` is a
 * number); a reference inside a longer string is spliced in as text. Substituting after
 * parsing means an environment value can never change the document's structure.
 */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[] = []): unknown {
  if (typeof value === 'string') return substituteString(value, env, path);
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, String(i)]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k]);
    return out;
  }
  return value;
}

function lookup(name: string, fallback: string | undefined, env: NodeJS.ProcessEnv, path: string[]): string {
  const v = env[name];
  if (v !== undefined && v !== '') return v;
  if (fallback !== undefined) return fallback;
  throw new SidecarError('SIDECAR_CONFIG_ENV_MISSING', {
    message: `${path.join('.') || '(root)'}: environment variable ${name} is not set; set it or write \${env:${name}:-default}`,
    details: { path: path.join('.'), variable: name },
  });
}

function substituteString(s: string, env: NodeJS.ProcessEnv, path: string[]): unknown {
  if (!s.includes('${')) return s;
  const whole = WHOLE.exec(s);
  if (whole) return parseYamlScalar(lookup(whole[1]!, whole[2], env, path));
  return s.replace(REF, (match, escape: string, name: string, fallback: string | undefined) =>
    escape ? match.slice(1) : lookup(name, fallback, env, path),
  );
}
