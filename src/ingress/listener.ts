import type http from 'node:http';

/** The limits on clients (config limits: clientHeadersTimeout, …), in milliseconds; 0 disables one. */
export interface ClientTimeouts {
  clientHeadersTimeout: number;
  clientRequestTimeout: number;
  clientIdleTimeout: number;
}

/** The check never runs more often than this, nor less often than MAX_CHECK_MS. */
const MIN_CHECK_MS = 50;
const MAX_CHECK_MS = 500;

/**
 * node:http options that apply a listener's client timeouts on time. Node checks
 * headersTimeout and requestTimeout only every connectionsCheckingInterval, 30 s by default:
 * a 5 s headers timeout fired after up to 35 s, and slowloris connections lived up to twice
 * the limit. The check runs here at a quarter of the shortest timeout, between 50 and 500 ms,
 * so each fires at most half a second late; it walks only the connections that are in the
 * middle of a request.
 */
export function listenerTimeouts(
  t: ClientTimeouts,
): Pick<http.ServerOptions, 'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout' | 'connectionsCheckingInterval'> {
  const shortest = Math.min(...[t.clientHeadersTimeout, t.clientRequestTimeout].filter((v) => v > 0), MAX_CHECK_MS * 4);
  return {
    headersTimeout: t.clientHeadersTimeout,
    requestTimeout: t.clientRequestTimeout,
    keepAliveTimeout: t.clientIdleTimeout,
    connectionsCheckingInterval: Math.max(MIN_CHECK_MS, Math.min(MAX_CHECK_MS, Math.floor(shortest / 4))),
  };
}
