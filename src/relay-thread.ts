import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createLogger } from './log/index.ts';
import { createProtection } from './protect/index.ts';
import {
  createRelayCore,
  MalformedOtlp,
  RELAY_THREAD,
  WORKER_BUNDLE,
  type ExportConfig,
  type FromWorker,
  type RelayThreadData,
  type ToWorker,
  type WorkerSource,
} from './telemetry/index.ts';

// The OTLP relay's worker thread (telemetry/relay/thread.ts starts it): it composes what the
// sidecar composes for the relay, data protection and the relay's core, so it lives beside
// sidecar.ts rather than in telemetry, which imports no feature. The telemetry rule set is
// built from the configuration as the sidecar builds it, then each request is rewritten,
// queued and exported here.

declare const __filename: string | undefined;

/** Where this build keeps the worker's code: this module (sources), the bundle beside the CLI bundle, or the executable's asset. */
export function relayWorkerSource(): WorkerSource {
  const sea = process.getBuiltinModule('node:sea');
  if (sea?.isSea()) return { code: sea.getAsset(WORKER_BUNDLE, 'utf8') };
  // The CommonJS bundle (bin/agent-sidecar.js) has the worker bundle beside it.
  if (typeof __filename === 'string' && __filename.endsWith('.cjs')) return { file: join(dirname(__filename), WORKER_BUNDLE) };
  // The sources (TypeScript run as it is) or their compiled modules: this very file.
  return { file: new URL(import.meta.url) };
}

async function main(port: NonNullable<typeof parentPort>, data: RelayThreadData): Promise<void> {
  const send = (m: FromWorker) => port.postMessage(m);
  let core: ReturnType<typeof createRelayCore>;
  try {
    // Its keys and rules are read again here; nothing of it logs (the sidecar's own copy reports problems).
    const silent = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
    const protection = data.config.protection.telemetry.enabled ? await createProtection(data.config, silent) : undefined;
    core = createRelayCore({
      queueBytes: data.queueBytes,
      exportConfig: data.exportConfig as unknown as ExportConfig,
      protect: protection?.telemetryExport?.agent,
      extra: data.extra,
      drops: { dropped: (signal, reason, count) => send({ t: 'drop', signal, reason, count }) },
    });
  } catch (err) {
    send({ t: 'failed', message: (err as Error).message });
    return;
  }
  port.on('message', (m: ToWorker) => {
    if (m.t === 'accept') {
      try {
        const rejected = core.accept(m.signal, Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength)) as number;
        send({ t: 'accepted', id: m.id, rejected });
      } catch (err) {
        send(err instanceof MalformedOtlp ? { t: 'malformed', id: m.id, message: err.message } : { t: 'error', id: m.id, message: (err as Error).message });
      }
      return;
    }
    void (m.t === 'flush' ? core.forceFlush() : core.shutdown()).finally(() => send({ t: 'done', id: m.id }));
  });
  send({ t: 'ready' });
}

// Only in the worker that thread.ts starts: the sidecar imports this module for relayWorkerSource().
if (!isMainThread && parentPort !== null && (workerData as { [RELAY_THREAD]?: true } | undefined)?.[RELAY_THREAD] === true)
  void main(parentPort, workerData as RelayThreadData);
