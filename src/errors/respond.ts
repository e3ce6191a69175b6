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
 * honest signal left to the client is a cut connection. Returns the body bytes written.
 */
export function sendError(
  res: ServerResponse,
  err: SidecarError,
  requestId: string | undefined,
  extraHeaders?: Record<string, string>,
  requestIdHeader = 'x-request-id',
): number {
  if (res.headersSent) {
    res.destroy(err);
    return 0;
  }
  // Every error carries a request id, one of its own when none could be read.
  requestId ??= randomUUID();
  const body = errorBody(err, requestId);
  const length = Buffer.byteLength(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': length,
    'cache-control': 'no-store',
    ...err.headers,
    ...extraHeaders,
  };
  headers[requestIdHeader] = requestId;
  // The phrase is given: a relayed head that node:http refused may have left its own behind.
  res.writeHead(err.status, STATUS_CODES[err.status], headers);
  res.end(body);
  return length;
}

/** For raw sockets (parse errors, CONNECT): writes a minimal HTTP/1.1 error and closes. Returns the body bytes written. */
export function writeSocketError(
  socket: { writable: boolean; end(data: string): void; destroy(): void },
  err: SidecarError,
  requestId?: string,
  requestIdHeader = 'x-request-id',
): number {
  if (!socket.writable) {
    socket.destroy();
    return 0;
  }
  requestId ??= randomUUID();
  const body = errorBody(err, requestId);
  const length = Buffer.byteLength(body);
  let extra = '';
  for (const [name, value] of Object.entries(err.headers ?? {})) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      extra +
      `content-length: ${length}\r\n` +
      `${requestIdHeader}: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
  return length;
}
