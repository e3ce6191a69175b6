import { isIPv6 } from 'node:net';
import { prefiltered, regexDetector, type Detector } from './types.ts';

// Found from each @: the local part to its left (at most 64 characters, RFC 5321 4.5.3.1.1),
// labels and a TLD of letters to its right. Scanning from @ instead of running a regex from
// every position keeps text without an address at the cost of one indexOf.
const DOMAIN = /(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])/y;
// Image names such as icon@2x.png are not addresses.
const FILE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'avif', 'ico']);

export const emailDetector: Detector = {
  name: 'email',
  wants: (s) => s.at,
  find(text, emit) {
    for (let at = text.indexOf('@'); at !== -1; at = text.indexOf('@', at + 1)) {
      let start = at;
      while (start > 0 && at - start < 64 && isLocal(text.charCodeAt(start - 1))) start--;
      // Longer than a local part may be: a token, not an address.
      if (start > 0 && isAlnum(text.charCodeAt(start - 1))) continue;
      // (+ops+alerts@…: the address starts at its first letter or digit.
      while (start < at && !isAlnum(text.charCodeAt(start))) start++;
      if (start === at) continue;
      DOMAIN.lastIndex = at + 1;
      const m = DOMAIN.exec(text);
      if (m === null || FILE_EXTENSIONS.has(m[1]!.toLowerCase())) continue;
      emit(start, DOMAIN.lastIndex, 'email');
      at = DOMAIN.lastIndex - 1;
    }
  },
};

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
// RFC 5322 dot-atom characters people actually use: letters, digits and . _ % + -
function isLocal(c: number): boolean {
  return isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g');
const IPV6 = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3})(?![\w:])/g;

export const ipv4Detector: Detector = regexDetector('ip', IPV4, (s) => s.digits >= 4 && s.dots >= 3);
export const ipv6Detector: Detector = regexDetector(
  'ip',
  IPV6,
  (s) => s.colon,
  // 10:30:00 and a::b-looking words are not addresses; node:net decides.
  (m) => (m[0].includes('::') || m[0].split(':').length === 8 ? isIPv6(m[0]) : false),
);

// A JWS: base64url header and payload, both JSON objects ({" -> eyJ), and a signature.
const JWT = /(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?![\w-])/g;

export const jwtDetector: Detector = prefiltered(
  'eyJ',
  regexDetector(
    'jwt',
    JWT,
    () => true,
    (m) => isJoseHeader(m[0].slice(0, m[0].indexOf('.'))),
  ),
);

function isJoseHeader(segment: string): boolean {
  try {
    const header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown;
    return typeof header === 'object' && header !== null && 'alg' in header;
  } catch {
    return false;
  }
}

// RFC 6750 b64token after the scheme; the scheme itself stays readable.
const BEARER = /\b(?:[Bb]earer|BEARER)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)/g;

export const bearerDetector: Detector = prefiltered(
  /earer|EARER/,
  regexDetector(
    'bearer',
    BEARER,
    () => true,
    (m) => [m.index + m[0].length - m[1]!.length, m.index + m[0].length],
  ),
);
