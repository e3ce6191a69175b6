import { pino, type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
import { stdoutDestination } from './stdout.ts';

export type { Logger };

/**
 * JSON lines (pino: the lowest overhead among Node loggers), on stdout by default: in
 * batches, and never in a way that can hold the process when the reader of stdout is gone
 * or stops reading (see stdout.ts); what is buffered is written at exit.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  let dest: { write(line: string): unknown } | NodeJS.WritableStream | undefined = destination;
  if (dest === undefined) {
    const stdout = stdoutDestination();
    if (!exitHooked) {
      exitHooked = true;
      process.once('exit', () => stdout.flushSync());
    }
    dest = stdout;
  }
  const root = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'message',
    },
    dest as DestinationStream,
  );
  const logger = root.child({ logger: 'agent-sidecar' });
  Object.defineProperty(logger, ROOT, { value: root });
  return logger;
}

const ROOT = Symbol('agent-sidecar.root-logger');
let exitHooked = false;

/**
 * A component's logger: its lines carry `logger: <name>` once. (A pino child of a child that
 * binds `logger` again writes the key twice, and Elasticsearch refuses duplicate keys.)
 */
export function componentLogger(parent: Logger, name: string, bindings: Record<string, unknown> = {}): Logger {
  const root = (parent as unknown as Record<symbol, Logger | undefined>)[ROOT] ?? parent;
  const child = root.child({ logger: name, ...bindings });
  if (root.level !== parent.level) child.level = parent.level;
  return child;
}

/**
 * A logger like `logger` whose lines, and those of every componentLogger made from it, go
 * through `options` first (data protection's formatters and serializers).
 */
export function derivedLogger(logger: Logger, options: ChildLoggerOptions): Logger {
  const root = ((logger as unknown as Record<symbol, Logger | undefined>)[ROOT] ?? logger).child({}, options);
  const child = root.child(logger.bindings());
  child.level = logger.level;
  Object.defineProperty(child, ROOT, { value: root });
  return child;
}

/** The stream a logger writes to, for writers that build their JSON lines themselves. */
export function destinationOf(logger: Logger): { write(line: string): unknown } {
  const stream = (logger as unknown as Record<symbol, { write(line: string): unknown } | undefined>)[pino.symbols.streamSym];
  if (stream === undefined) throw new Error('not a pino logger: it has no destination stream');
  return stream;
}
