import { stdSerializers, type Logger } from 'pino';
import { derivedLogger } from './logger.ts';

/** The two halves of a rule set a log line needs. */
export interface LogProtection {
  /** A log call's object: field rules and detectors, copy on write. */
  value(value: unknown): unknown;
  /** The message. */
  text(value: string): string;
}

/**
 * A child logger whose lines are protected before they are serialized: the merge object through
 * pino's `formatters.log`, the message and serialized errors through serializers (pino applies
 * `serializers[messageKey]` to the message). Its children and component loggers inherit both,
 * so every line pino writes for the sidecar — audit events, warnings — is protected. (The
 * access lines, written by hand, are protected before they are built: protect/telemetry.ts.)
 */
export function protectLogger(logger: Logger, protection: LogProtection): Logger {
  const text = (v: unknown) => (typeof v === 'string' ? protection.text(v) : protection.value(v));
  return derivedLogger(logger, {
    formatters: { log: (obj) => protection.value(obj) as Record<string, unknown> },
    serializers: { message: text, err: (err: Error) => protection.value(stdSerializers.err(err)) },
  });
}
