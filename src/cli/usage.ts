import ms from 'ms';
import { DURATION_PATTERN } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';

// Operator mistakes on the command line: main.ts turns a SidecarError into exit status 2.

/** A command-line mistake, with what to fix. */
export const usageError = (message: string): SidecarError => new SidecarError('SIDECAR_USAGE_INVALID', { message });

/** Parses a duration flag (90d, 12h, 30m) into milliseconds, the syntax the config file uses. */
export function parseDurationFlag(flag: string, value: string): number {
  if (!DURATION_PATTERN.test(value)) throw usageError(`${flag} ${value}: expected a duration such as 90d, 12h or 30m`);
  return ms(value as ms.StringValue);
}

/** Commander collector for repeatable options (--role a --role b). */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];
