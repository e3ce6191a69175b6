import type { Pool } from 'undici';
import type { ReadinessCheck } from '../core/index.ts';

/**
 * Ready when the upstream answers HTTP at all (any status): the question is whether the
 * agent is up, not whether that path exists. Results are reused for `cacheMs` so that
 * frequent probes do not turn into upstream load.
 */
export function upstreamReadiness(pool: Pool, path: string, timeoutMs: number, cacheMs = 1000): ReadinessCheck {
  let last: { at: number; result: Promise<string | undefined> } | undefined;
  const probe = async (): Promise<string | undefined> => {
    try {
      const { body } = await pool.request({
        path,
        method: 'GET',
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        headers: { 'user-agent': 'agent-sidecar-readiness' },
      });
      await body.dump();
      return undefined;
    } catch (err) {
      return `upstream unreachable: ${(err as Error).message}`;
    }
  };
  return {
    name: 'upstream',
    check() {
      const now = Date.now();
      if (last === undefined || now - last.at > cacheMs) last = { at: now, result: probe() };
      return last.result;
    },
  };
}
