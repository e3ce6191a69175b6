export { componentLogger, createLogger, derivedLogger, destinationOf, type Logger } from './logger.ts';
export { flushStdout, stdoutDestination, type StdoutDestination } from './stdout.ts';
export { protectLogger, type LogProtection } from './protect.ts';
