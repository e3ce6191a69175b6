import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';
import { HTTP_BUCKETS, METRIC, REFERENCE_BUCKETS } from './names.ts';

/** The synchronous instruments the request path records into. */
export interface Instruments {
  serverDuration: Histogram;
  serverActive: UpDownCounter;
  clientDuration: Histogram;
  requests: Counter;
  requestDuration: Histogram;
  errors: Counter;
  authAttempts: Counter;
  authzDecisions: Counter;
  rateLimited: Counter;
  revocationChecks: Counter;
  dropped: Counter;
}

export function createInstruments(meter: Meter): Instruments {
  return {
    serverDuration: meter.createHistogram(METRIC.serverDuration, {
      unit: 's',
      description: 'Duration of HTTP server requests.',
      advice: { explicitBucketBoundaries: HTTP_BUCKETS },
    }),
    serverActive: meter.createUpDownCounter(METRIC.serverActive, { unit: '{request}', description: 'Number of active HTTP server requests.' }),
    clientDuration: meter.createHistogram(METRIC.clientDuration, {
      unit: 's',
      description: 'Duration of the requests to the agent (the upstream).',
      advice: { explicitBucketBoundaries: HTTP_BUCKETS },
    }),
    requests: meter.createCounter(METRIC.requests, { description: 'Requests to the agent, by agent_type, status (success|error) and endpoint (route template).' }),
    requestDuration: meter.createHistogram(METRIC.requestDuration, {
      unit: 's',
      description: 'Request duration as the client sees it, by agent_type and endpoint.',
      advice: { explicitBucketBoundaries: REFERENCE_BUCKETS },
    }),
    errors: meter.createCounter(METRIC.errors, { description: 'Failed requests by agent_type and error_type (a SIDECAR_* code or the upstream status).' }),
    authAttempts: meter.createCounter(METRIC.authAttempts, { description: 'Authentication outcomes by outcome, auth_method and reason.' }),
    authzDecisions: meter.createCounter(METRIC.authzDecisions, { description: 'Policy decisions by decision (allowed|denied|dry_run_denied) and reason.' }),
    rateLimited: meter.createCounter(METRIC.rateLimited, { description: 'Requests refused with 429, by agent_type and endpoint.' }),
    revocationChecks: meter.createCounter(METRIC.revocationChecks, { description: 'Token revocation checks by result (valid|revoked|store_unavailable).' }),
    dropped: meter.createCounter(METRIC.telemetryDropped, { description: 'Spans, log records and metric points that never reached the collector, by signal and reason.' }),
  };
}
