import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines (pino: the lowest overhead among Node loggers). On stdout the writes are
 * asynchronous and coalesced while one is in flight, so access and audit records under load
 * cost a buffer append, not a system call each; what is buffered is flushed at exit.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  let dest: DestinationStream | NodeJS.WritableStream | undefined = destination;
  if (dest === undefined) {
    const stdout = pino.destination({ dest: 1, sync: false });
    process.once('exit', () => {
      try {
        stdout.flushSync();
      } catch {
        // stdout already closed: nothing left to save.
      }
    });
    dest = stdout;
  }
  return pino(
    {
      level,
      base: { logger: 'agent-sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'message',
    },
    dest,
  );
}
