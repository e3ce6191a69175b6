export { componentLogger, createLogger, derivedLogger, destinationOf, type Logger } from './logger.ts';
export { protectLogger, type LogProtection } from './protect.ts';
