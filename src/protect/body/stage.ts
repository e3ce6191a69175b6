import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import { SidecarError, type SidecarErrorCode } from '../../errors/index.ts';
import type { BodyTransform, RequestBody, RequestContext, Stage } from '../../core/index.ts';
import type { Logger } from '../../log/index.ts';
import type { Protector } from '../engine.ts';
import { createBufferedTransform, protectWhole, transformStream } from './buffered.ts';
import { classify, type ContentType } from './content.ts';
import { createFramedTransform, LineSplitter } from './framed.ts';
import { protectEvent, protectLine } from './frames.ts';
import { createRouteMatcher, type ProtectedRoute } from './routes.ts';
import { SseSplitter } from './sse.ts';

export interface BodyStageOptions {
  routes: readonly ProtectedRoute[];
  ruleSet(name: string): Protector;
  /** protection.maxBodyBytes: a whole body, one SSE event or one NDJSON line. */
  maxBodyBytes: number;
  /** limits.maxBodyBytes (0: none), which still applies to every request body. */
  limitBodyBytes: number;
  logger: Logger;
}

type Direction = 'request' | 'response';
const CODES: Record<Direction, { invalid: SidecarErrorCode; tooLarge: SidecarErrorCode }> = {
  request: { invalid: 'SIDECAR_PROTECTED_BODY_INVALID', tooLarge: 'SIDECAR_PROTECTED_BODY_TOO_LARGE' },
  response: { invalid: 'SIDECAR_UPSTREAM_BODY_UNPROTECTABLE', tooLarge: 'SIDECAR_UPSTREAM_BODY_UNPROTECTABLE' },
};
// A rewritten body no longer matches the upstream's validators and digests.
const STALE_RESPONSE_HEADERS = ['content-length', 'etag', 'content-md5', 'digest', 'content-digest', 'repr-digest', 'accept-ranges'];

/**
 * The body stage of protection.routes. Request bodies: JSON and text are read (up to
 * maxBodyBytes), protected and forwarded with their new Content-Length; NDJSON and SSE are
 * protected line by line / event by event as they stream. Response bodies: a hook the proxy
 * calls with the upstream's head (ctx.responseBody). Other content types pass untouched. A
 * body that cannot be protected fails closed (400/413, or 502 for responses) unless the route
 * says onError: pass, which is logged.
 */
export function createBodyStage(o: BodyStageOptions): Stage {
  const match = createRouteMatcher(o.routes);
  const { maxBodyBytes, limitBodyBytes } = o;
  const cap = limitBodyBytes > 0 ? Math.min(maxBodyBytes, limitBodyBytes) : maxBodyBytes;

  /** The refusal, or undefined (and a warning) when the route passes what it cannot protect. */
  function unprotectable(ctx: RequestContext, route: ProtectedRoute, direction: Direction, reason: 'invalid' | 'tooLarge'): SidecarError | undefined {
    if (route.onError === 'refuse') return new SidecarError(CODES[direction][reason]);
    o.logger.warn(
      { event_type: 'protection_bypassed', request_id: ctx.requestId, route: route.path, direction, reason: reason === 'invalid' ? 'unreadable' : 'too_large' },
      `a ${direction} body passed unprotected (onError: pass)`,
    );
    return undefined;
  }
  const orThrow = (err: SidecarError | undefined) => {
    if (err !== undefined) throw err;
  };

  function framed(p: Protector, ct: ContentType, ctx: RequestContext, route: ProtectedRoute, direction: Direction): BodyTransform {
    const sse = ct.kind === 'sse';
    return createFramedTransform({
      split: sse ? new SseSplitter() : new LineSplitter(),
      frame: sse ? (bytes) => protectEvent(p, bytes) : (bytes) => protectLine(p, bytes, () => orThrow(unprotectable(ctx, route, direction, 'invalid'))),
      maxFrameBytes: maxBodyBytes,
      oversize: () => unprotectable(ctx, route, direction, 'tooLarge'),
    });
  }

  function protectRequest(ctx: RequestContext, route: ProtectedRoute, p: Protector): void | Promise<void> {
    const { req, clientBody } = ctx;
    if (clientBody === undefined) return;
    const cl = req.headers['content-length'];
    const ct = classify(req.headers['content-type']);
    if (ct?.kind === 'other') return;
    if (limitBodyBytes > 0 && cl !== undefined && Number(cl) > limitBodyBytes) throw new SidecarError('SIDECAR_BODY_TOO_LARGE');
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      orThrow(unprotectable(ctx, route, 'request', 'invalid'));
      return;
    }
    if (ct?.kind === 'ndjson' || ct?.kind === 'sse') {
      ctx.requestBody = pipeline(clientBody.stream(), transformStream(framed(p, ct, ctx, route, 'request')), noop);
      ctx.strippedHeaders.add('content-length');
      return;
    }
    if (cl !== undefined && Number(cl) > cap) {
      orThrow(unprotectable(ctx, route, 'request', 'tooLarge'));
      return;
    }
    return readAndProtect(ctx, clientBody, route, p, ct);
  }

  async function readAndProtect(ctx: RequestContext, clientBody: RequestBody, route: ProtectedRoute, p: Protector, ct: ContentType | undefined): Promise<void> {
    const { body, complete } = await clientBody.read(cap);
    if (!complete) {
      orThrow(unprotectable(ctx, route, 'request', 'tooLarge'));
      ctx.requestBody = clientBody.stream(body);
      return;
    }
    let out = protectWhole(p, ct, body);
    if (out === undefined) {
      orThrow(unprotectable(ctx, route, 'request', 'invalid'));
      out = protectWhole(p, ct, body, true)!;
    }
    ctx.requestBody = out;
    ctx.upstreamHeaders.set('content-length', String(out.length));
  }

  function responseTransform(
    ctx: RequestContext,
    route: ProtectedRoute,
    p: Protector,
    status: number,
    headers: IncomingHttpHeaders,
  ): BodyTransform | undefined {
    if (ctx.req.method === 'HEAD' || status < 200 || status === 204 || status === 304) return undefined;
    const ct = classify(headers['content-type']);
    if (ct?.kind === 'other') return undefined;
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      // The upstream compressed despite Accept-Encoding: identity.
      const refusal = unprotectable(ctx, route, 'response', 'invalid');
      return refusal === undefined ? undefined : refusing(refusal);
    }
    for (const name of STALE_RESPONSE_HEADERS) delete headers[name];
    if (ct?.kind === 'sse' || ct?.kind === 'ndjson') return framed(p, ct, ctx, route, 'response');
    return createBufferedTransform({
      max: maxBodyBytes,
      oversize: () => unprotectable(ctx, route, 'response', 'tooLarge'),
      protect(body) {
        const out = protectWhole(p, ct, body);
        if (out !== undefined) return out;
        orThrow(unprotectable(ctx, route, 'response', 'invalid'));
        return protectWhole(p, ct, body, true)!;
      },
    });
  }

  return function protectBodies(ctx) {
    const route = match(ctx.req.method ?? 'GET', ctx.target);
    if (route === undefined) return;
    const p = o.ruleSet(route.rules);
    if (route.response) {
      // Compressed or partial answers could not be read: ask for neither.
      ctx.upstreamHeaders.set('accept-encoding', 'identity');
      ctx.strippedHeaders.add('range');
      ctx.strippedHeaders.add('if-range');
      ctx.responseBody = (status, headers) => responseTransform(ctx, route, p, status, headers);
    }
    if (route.request) return protectRequest(ctx, route, p);
  };
}

function refusing(err: SidecarError): BodyTransform {
  return {
    holdHead: true,
    push: () => {
      throw err;
    },
    end: () => {
      throw err;
    },
  };
}

function noop(): void {}
