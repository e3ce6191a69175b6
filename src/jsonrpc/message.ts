import { isUtf8 } from 'node:buffer';
import type { SidecarErrorCode } from '../errors/index.ts';

/** A JSON-RPC id as MCP and A2A allow it: a string or an integer, never null. */
export type RpcId = string | number;

/** One JSON-RPC 2.0 message, as a client may POST it on Streamable HTTP. */
export type RpcMessage =
  | { readonly kind: 'request'; readonly id: RpcId; readonly method: string; readonly params: Readonly<Record<string, unknown>> | undefined }
  | { readonly kind: 'notification'; readonly method: string; readonly params: Readonly<Record<string, unknown>> | undefined }
  | { readonly kind: 'response'; readonly id: RpcId };

/** Why a message is refused before anything is forwarded: the sidecar's code and the JSON-RPC one. */
export interface RpcProblem {
  readonly code: SidecarErrorCode;
  /** JSON-RPC 2.0 5.1: -32700 parse error, -32600 invalid request. */
  readonly rpcCode: number;
}

const PARSE: RpcProblem = { code: 'SIDECAR_MCP_PARSE_ERROR', rpcCode: -32700 };
const INVALID: RpcProblem = { code: 'SIDECAR_MCP_INVALID_REQUEST', rpcCode: -32600 };
const BATCH: RpcProblem = { code: 'SIDECAR_MCP_BATCH_REFUSED', rpcCode: -32600 };
const DEEP: RpcProblem = { code: 'SIDECAR_MCP_MESSAGE_TOO_DEEP', rpcCode: -32600 };
const DUPLICATE: RpcProblem = { code: 'SIDECAR_MCP_DUPLICATE_KEY', rpcCode: -32600 };

/**
 * Parses one POSTed message, once: the bytes are checked (UTF-8, nesting depth, duplicate
 * keys) in one pass, then JSON.parse runs, then the JSON-RPC shape is checked. Depth is bounded
 * because the agent's own parser may recurse; duplicate keys are refused because parsers
 * disagree on which one counts (JSON.parse keeps the last, others the first), so the name the
 * sidecar authorizes could differ from the one the agent runs.
 */
export function parseMessage(body: Buffer, maxDepth: number): RpcMessage | RpcProblem {
  if (!isUtf8(body)) return PARSE;
  const scanned = scan(body, maxDepth);
  if (scanned !== undefined) return scanned;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return PARSE;
  }
  if (Array.isArray(value)) return BATCH;
  return toMessage(value);
}

export function isProblem(m: RpcMessage | RpcProblem): m is RpcProblem {
  return (m as RpcProblem).rpcCode !== undefined;
}

function toMessage(value: unknown): RpcMessage | RpcProblem {
  if (typeof value !== 'object' || value === null) return INVALID;
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return INVALID;
  const hasId = Object.hasOwn(m, 'id');
  if (hasId && !isId(m.id)) return INVALID;
  const params = m.params;
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) return INVALID;
  if (typeof m.method === 'string') {
    if (m.method === '') return INVALID;
    const p = params as Record<string, unknown> | undefined;
    return hasId ? { kind: 'request', id: m.id as RpcId, method: m.method, params: p } : { kind: 'notification', method: m.method, params: p };
  }
  if (m.method !== undefined || !hasId) return INVALID;
  // A response answers exactly once: a result or an error, never both.
  if (Object.hasOwn(m, 'result') === Object.hasOwn(m, 'error')) return INVALID;
  return { kind: 'response', id: m.id as RpcId };
}

function isId(id: unknown): boolean {
  return typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id));
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * One pass over the bytes outside strings: nesting depth, and each object's keys. Malformed
 * input is left to JSON.parse; this only has to stop and not throw.
 */
function scan(buf: Buffer, maxDepth: number): RpcProblem | undefined {
  // One entry per open container: the keys seen so far of an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  const len = buf.length;
  for (let i = 0; i < len; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      let j = i + 1;
      let escaped = false;
      while (j < len && buf[j] !== QUOTE) {
        if (buf[j] === BACKSLASH) {
          escaped = true;
          j += 2;
        } else j++;
      }
      if (j >= len) return undefined;
      if (expectKey) {
        const keys = open[open.length - 1]!;
        const raw = buf.toString('utf8', i + 1, j);
        let key = raw;
        if (escaped) {
          try {
            key = JSON.parse(`"${raw}"`) as string;
          } catch {
            return undefined;
          }
        }
        if (keys.has(key)) return DUPLICATE;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (open.length >= maxDepth) return DEEP;
      const isObject = c === 0x7b;
      open.push(isObject ? new Set() : null);
      expectKey = isObject;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = open.length > 0 && open[open.length - 1] !== null;
    }
  }
  return undefined;
}
