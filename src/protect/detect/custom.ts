import { regexDetector, type Detector } from './types.ts';

/** A user-defined detector; the schema has already compiled and vetted the pattern. */
export function customDetector(name: string, pattern: string, flags: string): Detector {
  return regexDetector(name, new RegExp(pattern, `${flags.replace(/g/g, '')}g`), () => true);
}
