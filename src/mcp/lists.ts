import type { IncomingHttpHeaders } from 'node:http';
import type { BodyTransform, ResponseBodyHook } from '../core/index.ts';
import { SidecarError } from '../errors/index.ts';
import type { RpcId } from '../jsonrpc/index.ts';
import type { ItemKind } from '../policy/index.ts';
import { createFramedTransform, eventLines, SseSplitter, withData } from '../protect/index.ts';

/** Where a list result keeps its entries, and the field that names each. */
interface ListShape {
  readonly key: string;
  readonly field: string;
  readonly kind: ItemKind;
}

const SHAPES: Readonly<Record<string, ListShape>> = {
  'tools/list': { key: 'tools', field: 'name', kind: 'tools' },
  'prompts/list': { key: 'prompts', field: 'name', kind: 'prompts' },
  'resources/list': { key: 'resources', field: 'uri', kind: 'resources' },
  'resources/templates/list': { key: 'resourceTemplates', field: 'uriTemplate', kind: 'resources' },
};
const ALL_SHAPES = Object.values(SHAPES);

/** Whether a JSON-RPC method answers with a list the filter applies to. */
export const isListMethod = (method: string): boolean => Object.hasOwn(SHAPES, method);

/** Which entries the caller may see. */
export type Keep = (kind: ItemKind, name: string) => boolean;

// A filtered answer no longer matches the agent's validators and digests.
const STALE = ['content-length', 'etag', 'content-md5', 'digest', 'content-digest', 'repr-digest'];

/**
 * The response hook that filters list answers: a POST's answer to `method` (only the response
 * with the request's id), or with `method` undefined (a GET stream, which replays responses
 * when resumed) any response whose result has the shape of a list. JSON answers are held whole
 * (up to `max`); SSE answers are filtered event by event as they stream. What cannot be read is
 * refused (502): an unfiltered list would show the caller what it may not use.
 */
export function createListFilter(method: string | undefined, id: RpcId | undefined, keep: Keep, max: number): ResponseBodyHook {
  const shapes = method === undefined ? ALL_SHAPES : [SHAPES[method]!];
  const filter = (message: unknown): unknown => filterMessage(message, shapes, id, keep);
  return (status: number, headers: IncomingHttpHeaders): BodyTransform | undefined => {
    if (status !== 200) return undefined;
    const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return refusing();
    if (type === 'text/event-stream') {
      for (const name of STALE) delete headers[name];
      return createFramedTransform({
        split: new SseSplitter(),
        frame: (bytes) => filterEvent(bytes, filter),
        maxFrameBytes: max,
        oversize: () => unreadable(),
      });
    }
    if (type !== 'application/json') return undefined;
    for (const name of STALE) delete headers[name];
    return jsonTransform(filter, max);
  };
}

function filterMessage(message: unknown, shapes: readonly ListShape[], id: RpcId | undefined, keep: Keep): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return undefined;
  const m = message as Record<string, unknown>;
  if (Object.hasOwn(m, 'method') || (id !== undefined && m.id !== id)) return undefined;
  const result = m.result;
  if (typeof result !== 'object' || result === null) return undefined;
  for (const shape of shapes) {
    const list = (result as Record<string, unknown>)[shape.key];
    if (!Array.isArray(list)) continue;
    // An entry without a name cannot be judged, so it is not shown.
    const kept = list.filter((e: unknown) => {
      const name = typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[shape.field] : undefined;
      return typeof name === 'string' && keep(shape.kind, name);
    });
    if (kept.length === list.length) return undefined;
    return { ...m, result: { ...result, [shape.key]: kept } };
  }
  return undefined;
}

function filterEvent(bytes: Buffer, filter: (m: unknown) => unknown): Buffer {
  const event = eventLines(bytes);
  const data = event.data;
  if (data === undefined || data.trim() === '') return bytes;
  let message: unknown;
  try {
    message = JSON.parse(data);
  } catch {
    // Not a JSON-RPC message (a comment, a keep-alive): nothing to filter.
    return bytes;
  }
  const filtered = filter(message);
  return filtered === undefined ? bytes : Buffer.from(withData(event, JSON.stringify(filtered)));
}

function jsonTransform(filter: (m: unknown) => unknown, max: number): BodyTransform {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    holdHead: true,
    push(chunk) {
      size += chunk.length;
      if (size > max) throw unreadable();
      chunks.push(chunk);
      return undefined;
    },
    end() {
      const body = Buffer.concat(chunks, size);
      let message: unknown;
      try {
        message = JSON.parse(body.toString('utf8'));
      } catch (cause) {
        throw unreadable(cause);
      }
      const filtered = filter(message);
      return filtered === undefined ? body : Buffer.from(JSON.stringify(filtered));
    },
  };
}

function unreadable(cause?: unknown): SidecarError {
  return new SidecarError('SIDECAR_MCP_UPSTREAM_UNREADABLE', { cause });
}

function refusing(): BodyTransform {
  const fail = (): never => {
    throw unreadable();
  };
  return { holdHead: true, push: fail, end: fail };
}
