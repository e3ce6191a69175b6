import { randomBytes } from 'node:crypto';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `file` with `text` atomically: written beside it, then renamed over it, so that
 * a reader (a sidecar reloading its key file, a pipeline reading a manifest) never sees
 * half a file, and a failed write leaves the old file as it was. An existing file keeps its
 * mode; a new one gets `mode`.
 */
export async function writeFileAtomic(file: string, text: string, mode = 0o644): Promise<void> {
  const keep = await stat(file).then(
    (s) => s.mode & 0o777,
    () => mode,
  );
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: keep, flag: 'wx' });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
