import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout (pino: low overhead, asynchronous-safe serialisation). */
export function createLogger(level: string, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino(
    {
      level,
      base: { logger: 'agent-sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'message',
    },
    destination,
  );
}
