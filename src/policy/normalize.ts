import { SidecarError } from '../errors/index.ts';

export interface NormalizeOptions {
  /** Refuse `;` in paths: servlet-style matrix parameters are a known route-confusion trick. */
  rejectSemicolons: boolean;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * The one canonical form of a request path, which is both what RBAC matches and exactly what
 * the upstream receives:
 * - percent-encoded unreserved characters decoded (RFC 3986 6.2.2.2), other escapes upper-cased;
 * - encoded `/` or `\`, NUL, raw `\`, bad escapes refused (400), since upstreams disagree on them;
 * - empty segments merged and dot segments removed (RFC 3986 5.2.4); a trailing slash dropped.
 * `%25` stays encoded, so `%252e` can never become a dot segment here.
 */
export function normalizePath(target: string, options: NormalizeOptions): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  if (isCanonical(path, options)) return target;

  const decoded = decodeUnreserved(path, options);
  const out: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}${query}`;
}

/** The fast path: most paths are already canonical and need no allocation. */
function isCanonical(path: string, options: NormalizeOptions): boolean {
  if (path.length > 1 && path.charCodeAt(path.length - 1) === 47) return false;
  let prevSlash = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */ || c === 92 /* \ */ || (c === 59 /* ; */ && options.rejectSemicolons)) return false;
    if (c === 47) {
      if (prevSlash) return false;
      prevSlash = true;
      continue;
    }
    if (c === 46 /* . */ && prevSlash) {
      const next = path.charCodeAt(i + 1);
      if (Number.isNaN(next) || next === 47 || (next === 46 && (i + 2 === path.length || path.charCodeAt(i + 2) === 47))) return false;
    }
    prevSlash = false;
  }
  return true;
}

function decodeUnreserved(path: string, options: NormalizeOptions): string {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '\\') throw invalid('a backslash');
    if (ch === ';' && options.rejectSemicolons) throw invalid('a semicolon (matrix parameters)');
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!HEX.test(hex)) throw invalid('an invalid percent-encoding');
    const code = Number.parseInt(hex, 16);
    if (code === 0x2f || code === 0x5c) throw invalid('an encoded slash or backslash');
    if (code === 0) throw invalid('an encoded NUL');
    const c = String.fromCharCode(code);
    out += isUnreserved(code) ? c : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

function isUnreserved(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x30 && code <= 0x39) ||
    code === 0x2d ||
    code === 0x2e ||
    code === 0x5f ||
    code === 0x7e
  );
}

function invalid(what: string): SidecarError {
  return new SidecarError('SIDECAR_PATH_INVALID', { message: `The request path contains ${what}; it is refused rather than guessed at.` });
}
