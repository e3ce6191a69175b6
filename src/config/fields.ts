import bytes from 'bytes';
import ms from 'ms';
import { z } from 'zod';

/** Field builders shared by the sections of the configuration schema (schema.ts, egress.ts). */

export const DURATION_PATTERN = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;
export const duration = (description: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(DURATION_PATTERN, 'expected a duration such as 500ms, 30s, 5m or 1h')])
    .transform((v) => (typeof v === 'number' ? v : ms(v as ms.StringValue)))
    .meta({ description: `${description} A duration such as 500ms, 30s or 5m, or a number of milliseconds.` });

/** The longest a Node.js timer waits (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration that a timer waits for: at most MAX_TIMER_MS, and at least `min` ms. */
export const timer = (description: string, min = 0) =>
  duration(description)
    .refine((v) => v <= MAX_TIMER_MS, `at most ${MAX_TIMER_MS}ms (about 24.8 days): a timer cannot wait longer`)
    .refine((v) => v >= min, `at least ${min}ms`);

const SIZE = /^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i;
export const size = (description: string) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(SIZE, 'expected a size such as 16kb or 10mb')])
    .transform((v) => (typeof v === 'number' ? v : (bytes.parse(v) ?? 0)))
    .meta({ description: `${description} A size such as 16kb or 10mb, or a number of bytes.` });

const ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
/** host:port, [v6]:port. Port 0 asks the kernel for a free port. */
export const address = (description: string) =>
  z
    .string()
    .regex(ADDRESS, { error: 'expected host:port, for example 0.0.0.0:8080 or [::1]:8080', abort: true })
    .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')
    .meta({ description });

export const failMode = (def: 'open' | 'closed', what: string) =>
  z.enum(['open', 'closed']).default(def).meta({ description: `When Redis is unreachable: closed refuses (503), open lets ${what} pass.` });

export const keyValues = (description: string) => z.record(z.string().min(1), z.string()).default({}).meta({ description });

/**
 * The pool of an HTTP client (the upstream's, each LLM provider's): keep-alive connections and
 * the three timeouts, with the defaults and the name of what it connects to.
 */
export const clientPool = (peer: string, d: { connections: number; keepAlive: string; connect: string; headers: string; body: string; headersNote?: string }) => ({
  connections: z.number().int().min(1).max(4096).default(d.connections).meta({ description: `Keep-alive connections to ${peer} at most.` }),
  keepAliveTimeout: timer(`How long an idle connection to ${peer} is kept.`).prefault(d.keepAlive),
  timeouts: z
    .strictObject({
      connect: timer(`Connecting to ${peer}.`).prefault(d.connect),
      headers: timer(`From the request being sent to the response headers arriving${d.headersNote ?? ''}.`).prefault(d.headers),
      body: timer('The longest gap between two chunks of the response body; 0 disables it (long-lived streams).').prefault(d.body),
    })
    .prefault({}),
});
