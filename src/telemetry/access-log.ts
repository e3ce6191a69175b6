import { SeverityNumber } from '@opentelemetry/api';
import { destinationOf, type Logger } from '../log/index.ts';
import { nowNs, type LogEntry } from './otlp/logs.ts';
import type { LogSink } from './signal.ts';

/** One request's access record: the reference's field names, so its Elasticsearch template applies. */
export type AccessRecord = Record<string, string | number>;

export type AccessLevel = 'info' | 'warn' | 'error';

const SEVERITY: Record<AccessLevel, { number: number; text: string }> = {
  info: { number: SeverityNumber.INFO, text: 'INFO' },
  warn: { number: SeverityNumber.WARN, text: 'WARN' },
  error: { number: SeverityNumber.ERROR, text: 'ERROR' },
};

/** Where access records go: stdout JSON lines, OTLP log records, or both. */
export interface AccessLog {
  /** Whether a record of this level goes anywhere (else the caller need not build it). */
  enabled(level: AccessLevel): boolean;
  write(level: AccessLevel, record: AccessRecord, message: string, traceId: string, spanId: string, traceFlags: number): void;
}

/**
 * Access records are the one log line of every request, so both outputs skip the general
 * machinery: the JSON line is written by hand into the logger's own (buffered, asynchronous)
 * destination, in the same shape pino writes; the OTLP record is a plain object batched and
 * encoded later (otlp/logs.ts). npm run bench:micro:telemetry times the same record through
 * pino and through the SDK's log records and transformer, as baselines of these two.
 */
export function createAccessLog(
  stdout: Logger | undefined,
  otlp: LogSink | undefined,
  /** Records are protected before they are written (TelemetryProtection.accessLog wraps this log). */
  protectedRecords = false,
): AccessLog | undefined {
  if (stdout === undefined && otlp === undefined) return undefined;
  const dest = stdout === undefined ? undefined : destinationOf(stdout);
  const prefix = `,"logger":"agent-sidecar.access"`;
  return {
    enabled: (level) => otlp !== undefined || stdout!.isLevelEnabled(level),
    write(level, record, message, traceId, spanId, traceFlags) {
      if (dest !== undefined && stdout!.isLevelEnabled(level)) {
        let line = `{"level":"${level}","time":"${isoNow()}"${prefix}`;
        for (const key in record) {
          const v = record[key]!;
          line += `,"${key}":${typeof v === 'number' ? (Number.isFinite(v) ? v : 'null') : jsonString(v)}`;
        }
        dest.write(`${line},"message":${jsonString(message)}}\n`);
      }
      if (otlp !== undefined) {
        const s = SEVERITY[level];
        const entry: LogEntry = {
          timeNs: nowNs(),
          severityNumber: s.number,
          severityText: s.text,
          eventName: 'access',
          body: message,
          attributes: record,
          traceId,
          spanId,
          traceFlags,
        };
        if (protectedRecords) entry.protected = true;
        otlp.push(entry);
      }
    },
  };
}

// Printable ASCII but `"` and `\`: written as is; anything else goes through JSON.stringify.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

let lastMs = 0;
let lastIso = '';

/** Requests finishing within one millisecond share one formatted timestamp. */
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
