import type { SidecarError } from '../src/errors/index.ts';

/** The error `fn` throws (a SidecarError, for its code); fails the test when it throws none. */
export function thrownBy(fn: () => unknown): SidecarError {
  try {
    fn();
  } catch (err) {
    return err as SidecarError;
  }
  throw new Error('expected an error');
}
