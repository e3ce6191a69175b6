import type { IncomingHttpHeaders } from 'node:http';
import type { RpcCall, RpcMessage, RpcRefusal } from '../jsonrpc/index.ts';

/** The Streamable HTTP revisions whose messages the sidecar knows how to read and authorize. */
export const REVISIONS: readonly string[] = ['2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'];
const KNOWN = new Set(REVISIONS);
/** Stateless: no session, no GET stream, every request names itself in Mcp-Method and Mcp-Name. */
export const STATELESS = '2026-07-28';
// Before 2025-06-18 there was no header; servers read its absence as this revision.
const DEFAULT_REVISION = '2025-03-26';

const NAMED: Readonly<Record<string, string>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };
const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

/** What telemetry records of a message, on ingress and egress: its names (the arguments only for capture); a session only where the revision has them. */
export function callOf(headers: IncomingHttpHeaders, msg: Extract<RpcMessage, { method: string }>, revision: string): RpcCall {
  const session = revision === STATELESS ? undefined : headers['mcp-session-id'];
  const name = msg.params?.name;
  return {
    protocol: 'mcp',
    method: msg.method,
    id: msg.kind === 'request' ? msg.id : undefined,
    version: revision,
    session: typeof session === 'string' ? session : undefined,
    tool: msg.method === 'tools/call' && typeof name === 'string' ? name : undefined,
    arguments: msg.method === 'tools/call' ? msg.params?.arguments : undefined,
  };
}

/** The revision the request speaks, or the refusal of one the sidecar cannot authorize. */
export function revisionOf(headers: IncomingHttpHeaders): string | RpcRefusal {
  const header = headers['mcp-protocol-version'];
  if (header === undefined) return DEFAULT_REVISION;
  if (typeof header === 'string' && KNOWN.has(header)) return header;
  // An unknown revision may keep names where this sidecar does not look: refused, not guessed at.
  return { code: 'SIDECAR_MCP_VERSION_UNSUPPORTED', rpcCode: -32022, status: 400, data: { supported: REVISIONS, requested: String(header) } };
}

/**
 * What 2026-07-28 adds for intermediaries: the client sends no responses, and the Mcp-Method
 * and Mcp-Name headers and the body's protocol version must agree with the body, so that
 * nothing that routes on the headers sees another message than the one authorized here.
 */
export function checkStateless(headers: IncomingHttpHeaders, msg: RpcMessage, revision: string): RpcRefusal | undefined {
  if (msg.kind === 'response') return { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32600, id: msg.id, status: 400 };
  const id = msg.kind === 'request' ? msg.id : undefined;
  const mismatch = (header: string): RpcRefusal => ({ code: 'SIDECAR_MCP_HEADER_MISMATCH', rpcCode: -32020, id, status: 400, data: { header } });
  if (headers['mcp-method'] !== msg.method) return mismatch('Mcp-Method');
  const field = NAMED[msg.method];
  if (field !== undefined) {
    const name = headers['mcp-name'];
    if (typeof name !== 'string' || decodeHeader(name) !== msg.params?.[field]) return mismatch('Mcp-Name');
  }
  const meta = msg.params?._meta;
  const version = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['io.modelcontextprotocol/protocolVersion'] : undefined;
  if (version !== undefined && version !== revision) return mismatch('MCP-Protocol-Version');
  return undefined;
}

/** `=?base64?…?=` carries a value that is not a plain header value (2026-07-28, Value Encoding). */
function decodeHeader(value: string): string | undefined {
  const m = SENTINEL.exec(value);
  if (m === null) return value;
  const bytes = Buffer.from(m[1]!, 'base64');
  return bytes.toString('base64') === m[1] ? bytes.toString('utf8') : undefined;
}
