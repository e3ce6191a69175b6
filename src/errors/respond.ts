import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { SidecarError } from './catalog.ts';

/** The JSON body of every error the sidecar itself answers with. */
export function errorBody(err: SidecarError, requestId: string | undefined): string {
  return JSON.stringify({
    error: { code: err.code, message: err.message, request_id: requestId, ...err.details },
  });
}

/**
 * Answers with the error unless a response has already started; in that case the only
 * honest signal left to the client is a cut connection.
 */
export function sendError(
  res: ServerResponse,
  err: SidecarError,
  requestId: string | undefined,
  extraHeaders?: Record<string, string>,
  requestIdHeader = 'x-request-id',
): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  // Every error carries a request id, one of its own when none could be read.
  requestId ??= randomUUID();
  const body = errorBody(err, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...err.headers,
    ...extraHeaders,
  };
  headers[requestIdHeader] = requestId;
  res.writeHead(err.status, headers);
  res.end(body);
}

/** For raw sockets (parse errors, CONNECT): writes a minimal HTTP/1.1 error and closes. */
export function writeSocketError(
  socket: { writable: boolean; end(data: string): void; destroy(): void },
  err: SidecarError,
  requestId?: string,
  requestIdHeader = 'x-request-id',
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  requestId ??= randomUUID();
  const body = errorBody(err, requestId);
  let extra = '';
  for (const [name, value] of Object.entries(err.headers ?? {})) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      extra +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `${requestIdHeader}: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
}

