import { SidecarError } from '../errors/index.ts';

// ${env:NAME} or ${env:NAME:-default}; $${ escapes a literal ${.
const REF = /\$(\$?)\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE = /^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/;

/** What substitution put into the document: where, from which variable, and the text. */
export interface Substitution {
  path: readonly string[];
  variable: string;
  text: string;
  /** The reference was the whole value: its type then follows the schema at `path`. */
  whole: boolean;
}

/**
 * Substitutes environment references in every string of a parsed document. The result is
 * always text: an environment value is never parsed (as YAML or anything else), so no value
 * can change the document's structure or its types, whatever characters it holds. A whole
 * value that comes out empty (`${env:TOKEN:-}` with TOKEN unset) leaves the key unset, as
 * `key:` with nothing after it does. What was substituted is appended to `found`: the
 * loader gives whole references the type the schema asks for at their key, and keeps
 * every substituted text out of its messages.
 */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, found: Substitution[] = [], path: string[] = []): unknown {
  if (typeof value === 'string') return substituteString(value, env, path, found);
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, found, [...path, String(i)]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, found, [...path, k]);
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

function substituteString(s: string, env: NodeJS.ProcessEnv, path: string[], found: Substitution[]): unknown {
  if (!s.includes('${')) return s;
  const whole = WHOLE.exec(s);
  if (whole) {
    const text = lookup(whole[1]!, whole[2], env, path);
    if (text === '') return null;
    found.push({ path, variable: whole[1]!, text, whole: true });
    return text;
  }
  return s.replace(REF, (match, escape: string, name: string, fallback: string | undefined) => {
    if (escape) return match.slice(1);
    const text = lookup(name, fallback, env, path);
    found.push({ path, variable: name, text, whole: false });
    return text;
  });
}

/**
 * Replaces every substituted text of at least 4 characters in `message` with the reference
 * it came from, so that an error never shows a secret that came from the environment.
 */
export function redactSubstituted(message: string, found: readonly Substitution[]): string {
  const texts = found.filter((f) => f.text.length >= 4).sort((a, b) => b.text.length - a.text.length);
  let out = message;
  for (const f of texts) out = out.split(f.text).join(`\${env:${f.variable}}`);
  return out;
}
