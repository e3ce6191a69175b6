import { Writable } from 'node:stream';
import { redactConfigError, type SidecarConfig } from './config/index.ts';
import { isSidecarError, SidecarError } from './errors/index.ts';
import { createLogger } from './log/index.ts';
import { assembleSidecar } from './sidecar.ts';

/**
 * What `validate` runs: the sidecar assembled exactly as `run` assembles it (every file
 * read, every key imported, every rule, matcher, server, pool and exporter built), offline
 * (nothing bound, connected, fetched or exported; see AssembleOptions), then taken apart.
 * Throws what `run` would throw before it listens, as startFailure() words it. Returns
 * the warnings `run` would log at start, each a line with its code when it has one.
 */
export async function checkSidecar(config: Readonly<SidecarConfig>): Promise<string[]> {
  const warnings: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        try {
          const record = JSON.parse(line) as { message?: unknown; code?: unknown };
          if (typeof record.message === 'string') warnings.push(typeof record.code === 'string' ? `${record.message} [${record.code}]` : record.message);
        } catch {
          // Not a log record; nothing else writes here.
        }
      }
      done();
    },
  });
  let sidecar: Awaited<ReturnType<typeof assembleSidecar>>;
  try {
    sidecar = await assembleSidecar(config, createLogger('warn', sink), {}, { offline: true });
  } catch (err) {
    throw startFailure(err, config);
  }
  await sidecar.dispose();
  return warnings;
}

/**
 * A failure to build the sidecar, as `run` and `validate` report it: a SidecarError keeps its
 * code; anything else (a library refusing a value the schema let through) becomes
 * SIDECAR_CONFIG_INVALID with the library's first line, never a stack trace. Either way no
 * text substituted from the environment is shown.
 */
export function startFailure(err: unknown, config: Readonly<SidecarConfig>): SidecarError {
  const failure = isSidecarError(err)
    ? err
    : new SidecarError('SIDECAR_CONFIG_INVALID', {
        message: `the configuration was accepted, but the sidecar cannot be built from it: ${((err as Error | undefined)?.message ?? String(err)).split('\n')[0]}`,
      });
  return redactConfigError(failure, config) as SidecarError;
}
