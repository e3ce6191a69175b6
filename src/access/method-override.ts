import { SidecarError } from '../errors/index.ts';
import type { RequestContext } from '../core/index.ts';

// Frameworks that honour these let a GET-authorized caller perform a DELETE.
export const METHOD_OVERRIDE_HEADERS: readonly string[] = ['x-http-method-override', 'x-http-method', 'x-method-override'];
const METHOD = /^[A-Z]{3,10}$/;

/**
 * The method a request will really have at the agent. In `strip` mode override headers are
 * removed, so the request method is the truth; in `authorize` mode they are forwarded, and
 * the method they name is the one the policy checks.
 */
export function effectiveMethod(ctx: RequestContext, mode: 'strip' | 'authorize'): string {
  const method = ctx.req.method ?? 'GET';
  let named: string | undefined;
  for (const h of METHOD_OVERRIDE_HEADERS) {
    const v = ctx.req.headers[h];
    if (v === undefined) continue;
    if (mode === 'strip') {
      ctx.strippedHeaders.add(h);
      continue;
    }
    const candidate = (Array.isArray(v) ? v.join(',') : v).trim().toUpperCase();
    if (!METHOD.test(candidate) || (named !== undefined && named !== candidate)) {
      throw new SidecarError('SIDECAR_MALFORMED_REQUEST', { message: `Conflicting or invalid method override headers (${h}).` });
    }
    named = candidate;
  }
  return named ?? method;
}
