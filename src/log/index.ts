export { componentLogger, createLogger, destinationOf, type Logger } from './logger.ts';
