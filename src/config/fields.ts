import bytes from 'bytes';
import ms from 'ms';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';

/** Field builders shared by the sections of the configuration schema (schema.ts, egress.ts). */

export const DURATION_PATTERN = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;

/** One hour, one day, 30 and 365 days in milliseconds: the upper bounds of durations. */
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The longest a Node.js timer waits (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A bound as the configuration writes it: 1h, 30d, 2147483647ms (about 24.8 days). */
function shownMs(v: number): string {
  if (v === MAX_TIMER_MS) return `${MAX_TIMER_MS}ms (about 24.8 days)`;
  for (const [unit, n] of [
    ['d', DAY_MS],
    ['h', HOUR_MS],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (v > 0 && v % n === 0) return `${v / n}${unit}`;
  return `${v}ms`;
}

/**
 * A duration: a string such as 500ms, 30s or 5m, or a number of milliseconds; a whole number
 * of milliseconds from `min` to `max`.
 */
export const duration = (description: string, bounds: { max: number; min?: number; why?: string }) => {
  const { max, min = 0 } = bounds;
  const range = min > 0 ? `from ${shownMs(min)} to ${shownMs(max)}` : `at most ${shownMs(max)}`;
  return z
    .union([z.number().int().nonnegative(), z.string().regex(DURATION_PATTERN, 'expected a duration such as 500ms, 30s, 5m or 1h')])
    .transform((v) => (typeof v === 'number' ? v : ms(v as ms.StringValue)))
    .refine((v) => Number.isInteger(v), 'a duration is a whole number of milliseconds')
    .refine((v) => v <= max, `at most ${shownMs(max)}${bounds.why === undefined ? '' : `: ${bounds.why}`}`)
    .refine((v) => v >= min, `at least ${shownMs(min)}`)
    .meta({ description: `${description} A duration such as 500ms, 30s or 5m, or a number of milliseconds; ${range}.` });
};

/** A duration that a timer waits for: at most MAX_TIMER_MS, and at least `min` ms. */
export const timer = (description: string, min = 0) => duration(description, { max: MAX_TIMER_MS, min, why: 'a timer cannot wait longer' });

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)$/i;
const UNIT: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };
export const KIB = 1024;
export const MIB = 1024 ** 2;
export const GIB = 1024 ** 3;
export const TIB = 1024 ** 4;

/**
 * A size: a string such as 16kb or 10mb (units of 1024), or a number of bytes; a whole
 * number of bytes from `min` to `max`.
 */
export const size = (description: string, bounds: { max: number; min?: number; why?: string }) => {
  const { max, min = 0 } = bounds;
  const shown = (v: number) => (v > 0 && v % 1024 === 0 ? (bytes.format(v, { unitSeparator: '' }) ?? `${v}b`).toLowerCase() : `${v}b`);
  const range = min > 0 ? `from ${shown(min)} to ${shown(max)}` : `at most ${shown(max)}`;
  return z
    .union([z.number().int().nonnegative(), z.string().regex(SIZE, 'expected a size such as 16kb or 10mb')])
    .transform((v) => {
      if (typeof v === 'number') return v;
      const [, n, unit] = SIZE.exec(v)!;
      return Number(n) * UNIT[unit!.toLowerCase()]!;
    })
    .refine((v) => Number.isInteger(v), 'a size is a whole number of bytes')
    .refine((v) => v <= max, `at most ${shown(max)}${bounds.why === undefined ? '' : `: ${bounds.why}`}`)
    .refine((v) => v >= min, `at least ${shown(min)}`)
    .meta({ description: `${description} A size such as 16kb or 10mb, or a number of bytes; ${range}.` });
};

/** A whole number from `min` to `max`, the bound in its description and message. */
export const count = (description: string, max: number, min = 1) =>
  z
    .number()
    .int()
    .min(min)
    .max(max, `at most ${max.toLocaleString('en-US')}`)
    .meta({ description: `${description} From ${min} to ${max.toLocaleString('en-US')}.` });

const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
/** host:port, [v6]:port. Port 0 asks the kernel for a free port. */
export const address = (description: string) =>
  z
    .string()
    .regex(ADDRESS, { error: 'expected host:port, for example 0.0.0.0:8080 or [::1]:8080', abort: true })
    .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')
    .meta({ description });

// RFC 9110 5.6.2: what a header name may be (Node.js refuses to send anything else).
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** An HTTP header name, lower-cased. */
export const headerName = (description: string) =>
  z.string().regex(TOKEN, "expected a header name: letters, digits and !#$%&'*+.^_`|~-, no spaces or colons").toLowerCase().meta({ description });

/**
 * Peers as proxy-addr takes them: IP addresses, CIDR ranges or the names loopback,
 * linklocal, uniquelocal; each entry is checked as the sidecar compiles it at start.
 */
export const peerList = () =>
  z.array(
    z.string().refine((v) => {
      try {
        proxyaddr.compile([v]);
        return true;
      } catch {
        return false;
      }
    }, 'expected an IP address, a CIDR range such as 10.0.0.0/8, or one of loopback, linklocal, uniquelocal'),
  );

export const failMode = (def: 'open' | 'closed', what: string) =>
  z
    .enum(['open', 'closed'])
    .default(def)
    .meta({ description: `When Redis is unreachable: closed refuses (503), open lets ${what} pass.` });

export const keyValues = (description: string) => z.record(z.string().min(1), z.string()).default({}).meta({ description });

/**
 * The pool of an HTTP client (the upstream's, each LLM provider's): keep-alive connections and
 * the three timeouts, with the defaults and the name of what it connects to.
 */
export const clientPool = (
  peer: string,
  d: { connections: number; keepAlive: string; connect: string; headers: string; body: string; headersNote?: string },
) => ({
  connections: count(`Keep-alive connections to ${peer} at most.`, 4096).default(d.connections),
  keepAliveTimeout: timer(`How long an idle connection to ${peer} is kept (undici needs at least 1ms).`, 1).prefault(d.keepAlive),
  timeouts: z
    .strictObject({
      connect: timer(`Connecting to ${peer}.`).prefault(d.connect),
      headers: timer(`From the request being sent to the response headers arriving${d.headersNote ?? ''}.`).prefault(d.headers),
      body: timer('The longest gap between two chunks of the response body; 0 disables it (long-lived streams).').prefault(d.body),
    })
    .prefault({}),
});
