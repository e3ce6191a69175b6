import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../log/index.ts';
import { createProtection } from '../../protect/index.ts';
import type { ExportConfig } from '../pipeline.ts';
import { createRelayCore } from './index.ts';
import { MalformedOtlp } from './rewrite.ts';
import type { FromWorker, RelayThreadData, ToWorker } from './thread.ts';

// The relay's worker thread (thread.ts starts it): the telemetry rule set built from the
// configuration as the sidecar builds it, then each request rewritten, queued and exported here.

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

if (parentPort !== null) void main(parentPort, workerData as RelayThreadData);
