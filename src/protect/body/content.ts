import { isUtf8 } from 'node:buffer';

/** How a body is protected, from its Content-Type. */
export type BodyKind = 'json' | 'ndjson' | 'sse' | 'text' | 'other';

const NDJSON = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/jsonlines', 'application/x-jsonlines']);
const TEXT_APPLICATIONS = new Set(['application/xml', 'application/javascript', 'application/graphql', 'application/x-yaml', 'application/yaml']);

export interface ContentType {
  kind: BodyKind;
  /** The declared charset, lower-cased; undefined when none. */
  charset: string | undefined;
}

/**
 * JSON (application/json, …+json), NDJSON, SSE and text (text/*, XML, YAML, JavaScript) are
 * protected; everything else (images, octet streams, multipart, forms) passes untouched. A
 * body without a Content-Type is sniffed: JSON when it parses, text otherwise.
 */
export function classify(header: string | undefined): ContentType | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const semi = header.indexOf(';');
  const type = (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
  const charset = semi === -1 ? undefined : /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(header)?.[1]?.toLowerCase();
  let kind: BodyKind = 'other';
  if (type === 'application/json' || type === 'text/json' || (type.startsWith('application/') && type.endsWith('+json'))) kind = 'json';
  else if (NDJSON.has(type)) kind = 'ndjson';
  else if (type === 'text/event-stream') kind = 'sse';
  else if (type.startsWith('text/') || TEXT_APPLICATIONS.has(type) || (type.startsWith('application/') && type.endsWith('+xml'))) kind = 'text';
  return { kind, charset };
}

/** A body decoded as text, and how to encode the protected text back to the same bytes. */
export interface Decoded {
  text: string;
  encode(text: string): Buffer;
}

const UTF8 = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii']);
const LATIN1 = new Set(['iso-8859-1', 'latin1', 'l1', 'iso8859-1']);

/**
 * UTF-8 (strictly: invalid bytes are an error, never silently replaced), US-ASCII or
 * ISO-8859-1, which re-encode losslessly. Another charset: undefined (cannot be protected).
 * JSON is UTF-8 only (RFC 8259 8.1).
 */
export function decode(body: Buffer, ct: ContentType | undefined): Decoded | undefined {
  const charset = ct?.charset;
  if (charset === undefined || UTF8.has(charset)) {
    if (!isUtf8(body)) return undefined;
    return { text: body.toString('utf8'), encode: (t) => Buffer.from(t, 'utf8') };
  }
  if (ct?.kind === 'json' || !LATIN1.has(charset)) return undefined;
  return { text: body.toString('latin1'), encode: (t) => Buffer.from(t, 'latin1') };
}
