import type { SidecarError } from '../errors/index.ts';
import type { RequestContext } from './context.ts';

/**
 * Watches each request's life for telemetry. Every method runs on the request path, so it
 * must be cheap and must never throw (an observer that fails is the observer's problem).
 */
export interface RequestObserver {
  /** The request arrived; nothing has been checked yet. */
  requestStart(ctx: RequestContext): void;
  /** The proxy is about to call the upstream; may add headers (traceparent) to ctx.upstreamHeaders. */
  upstreamStart(ctx: RequestContext): void;
  /** The upstream call finished: its status, or the error that ended it. */
  upstreamEnd(ctx: RequestContext, statusCode: number | undefined, err: SidecarError | undefined): void;
  /** The response is done or the client went away; ctx.res.statusCode, ctx.errorCode and byte counts are final. */
  requestEnd(ctx: RequestContext): void;
}

/** Calls every observer; one that throws is isolated from the request and the others. */
export function combineObservers(observers: readonly RequestObserver[], onError: (err: unknown) => void): RequestObserver | undefined {
  if (observers.length === 0) return undefined;
  // Plain loops: this runs several times per request and must not allocate.
  return {
    requestStart(ctx) {
      for (const o of observers) {
        try {
          o.requestStart(ctx);
        } catch (err) {
          onError(err);
        }
      }
    },
    upstreamStart(ctx) {
      for (const o of observers) {
        try {
          o.upstreamStart(ctx);
        } catch (err) {
          onError(err);
        }
      }
    },
    upstreamEnd(ctx, status, error) {
      for (const o of observers) {
        try {
          o.upstreamEnd(ctx, status, error);
        } catch (err) {
          onError(err);
        }
      }
    },
    requestEnd(ctx) {
      for (const o of observers) {
        try {
          o.requestEnd(ctx);
        } catch (err) {
          onError(err);
        }
      }
    },
  };
}
