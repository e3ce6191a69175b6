import { randomUUID } from 'node:crypto';

// Accept a caller's id only if it is short and plain, so it is safe in logs and headers.
const SAFE_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
}
