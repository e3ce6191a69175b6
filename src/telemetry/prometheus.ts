import type http from 'node:http';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { MetricData, MetricProducer, ResourceMetrics } from '@opentelemetry/sdk-metrics';

/**
 * The admin /metrics endpoint: @opentelemetry/exporter-prometheus as a pull reader (no
 * server of its own), serialized after the unit suffix the collector's Prometheus exporter
 * adds (`http.server.request.duration` [s] -> `http_server_request_duration_seconds`), which
 * the JS serializer does not: both paths then yield the same names.
 */
export function createPrometheusEndpoint(...metricProducers: MetricProducer[]): { reader: PrometheusExporter; handler: http.RequestListener } {
  const reader = new PrometheusExporter({ preventServerStart: true, metricProducers });
  const serializer = new PrometheusSerializer();
  const handler: http.RequestListener = (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    reader.collect().then(
      ({ resourceMetrics }) => {
        const body = serializer.serialize(withUnitSuffixes(resourceMetrics));
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`# failed to collect metrics: ${String(err)}\n`);
      },
    );
  };
  return { reader, handler };
}

// The OTLP -> Prometheus unit words of the collector's translator, for the units we use.
const UNIT_WORDS: Readonly<Record<string, string>> = {
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
};

/** `name` as the collector would print it: the unit word appended unless already a suffix. */
export function prometheusName(name: string, unit: string): string {
  const word = UNIT_WORDS[unit];
  const base = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  if (word === undefined || base.endsWith(`_${word}`) || base.includes(`_${word}_`)) return base;
  return `${base}_${word}`;
}

function withUnitSuffixes(rm: ResourceMetrics): ResourceMetrics {
  return {
    resource: rm.resource,
    scopeMetrics: rm.scopeMetrics.map((sm) => ({
      scope: sm.scope,
      metrics: sm.metrics.map((m) => {
        const name = prometheusName(m.descriptor.name, m.descriptor.unit);
        return name === m.descriptor.name ? m : ({ ...m, descriptor: { ...m.descriptor, name } } as MetricData);
      }),
    })),
  };
}
