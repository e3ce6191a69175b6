import { unwatchFile, watchFile } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readFileCapped } from '../files/index.ts';
import type { Logger } from '../log/index.ts';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Reads and checks the pair; a bad pair is an operator error with its own code. */
export function loadTls(files: TlsFiles): SecureContextOptions {
  const read = (key: keyof TlsFiles): Buffer => {
    try {
      return readFileCapped(files[key], FILE_LIMITS.tls);
    } catch (cause) {
      throw new SidecarError('SIDECAR_TLS_INVALID', { message: `listen.tls.${key} (${files[key]}) cannot be read: ${(cause as Error).message}`, cause });
    }
  };
  const opts = { cert: read('certFile'), key: read('keyFile') };
  try {
    createSecureContext(opts);
    return opts;
  } catch (cause) {
    throw new SidecarError('SIDECAR_TLS_INVALID', {
      message: `cannot load TLS certificate ${files.certFile} with key ${files.keyFile}: ${(cause as Error).message}`,
      cause,
    });
  }
}

/**
 * Swaps in a new certificate when either file changes (polling, which also sees the
 * symlink swaps of Kubernetes secret volumes). A pair that fails to load is logged and the
 * running one stays. Returns the function that stops watching.
 */
export function watchTls(server: HttpsServer, files: TlsFiles, logger: Logger, intervalMs = 1000): () => void {
  const reload = () => {
    try {
      server.setSecureContext(loadTls(files));
      logger.info({ event_type: 'tls_reload', cert_file: files.certFile }, 'TLS certificate reloaded');
    } catch (err) {
      logger.error(
        { event_type: 'tls_reload', error: (err as Error).message, error_type: 'SIDECAR_TLS_INVALID' },
        'TLS reload failed; keeping the current certificate',
      );
    }
  };
  let pending: NodeJS.Timeout | undefined;
  // Certificate and key usually change together: reload once, after both have landed.
  const onChange = () => {
    clearTimeout(pending);
    pending = setTimeout(reload, 200).unref();
  };
  for (const f of [files.certFile, files.keyFile]) watchFile(f, { interval: intervalMs, persistent: false }, onChange);
  return () => {
    clearTimeout(pending);
    for (const f of [files.certFile, files.keyFile]) unwatchFile(f, onChange);
  };
}
