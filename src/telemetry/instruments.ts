import { ValueType, type Attributes, type Counter, type HrTime, type Meter, type Observable, type ObservableResult } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type HistogramMetricData,
  type MetricDescriptor,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { Resource } from '@opentelemetry/resources';
import { HTTP_BUCKETS, METRIC, REFERENCE_BUCKETS } from './names.ts';

/** One attribute set's running total: the request path bumps `n`, collection reads it. */
export class Tally {
  n = 0;
  readonly attrs: Attributes;
  constructor(attrs: Attributes) {
    this.attrs = attrs;
  }
}

/**
 * Running totals by attribute set, reported through an observable instrument when metrics
 * are collected. The request path then does `tally.n++` on a cell it already holds instead
 * of a synchronous `add`, which hashes the attributes (sorted keys, JSON) once per reader.
 * Cells are never dropped (the totals are cumulative); attribute sets are bounded by design.
 */
export class Tallies {
  readonly #cells = new Map<string, Tally>();
  /** The cell of `key`, made with `attrs()` the first time. */
  cell(key: string, attrs: () => Attributes): Tally {
    let c = this.#cells.get(key);
    if (c === undefined) this.#cells.set(key, (c = new Tally(attrs())));
    return c;
  }
  observe(instrument: Observable): void {
    instrument.addCallback((r: ObservableResult) => {
      for (const c of this.#cells.values()) r.observe(c.n, c.attrs);
    });
  }
}

/**
 * A monotonic counter of the request path, as features create it from the Meter they are
 * given: a {@link Tallies} behind an observable counter, so that counting is `cell.n++` on a
 * cell held per attribute set, not a synchronous `add`, which hashes the attributes (sorted
 * keys, JSON) once per metric reader on every call.
 *
 * @example
 * const decisions = tallyCounter(meter, METRIC.authzDecisions, 'Policy decisions by decision and reason.');
 * decisions.cell(`${decision}|${reason}`, () => ({ decision, reason })).n++;
 */
export function tallyCounter(meter: Meter, name: string, description: string): Tallies {
  // One per meter and name, as the SDK has one synchronous counter per name: two features (or
  // two checks) counting under one name add up, where two observable counters would each
  // report their own total under the same attributes.
  let byName = tallyCounters.get(meter);
  if (byName === undefined) tallyCounters.set(meter, (byName = new Map()));
  let tallies = byName.get(name);
  if (tallies === undefined) {
    byName.set(name, (tallies = new Tallies()));
    tallies.observe(meter.createObservableCounter(name, { description }));
  }
  return tallies;
}
const tallyCounters = new WeakMap<Meter, Map<string, Tallies>>();

/** One attribute set of a histogram: explicit buckets (inclusive upper bounds), sum, count, min, max. */
export class HistogramCell {
  readonly attrs: Attributes;
  readonly bounds: readonly number[];
  readonly counts: number[];
  readonly since: HrTime = hrTime();
  sum = 0;
  count = 0;
  min = Infinity;
  max = -Infinity;
  constructor(attrs: Attributes, bounds: readonly number[]) {
    this.attrs = attrs;
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }
  record(value: number): void {
    if (!(value >= 0)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
}

/**
 * A histogram aggregated here rather than by the SDK: the SDK's synchronous `record` hashes
 * the attributes (sorted keys, JSON) on every call and once per reader, while the request
 * path here bumps a cell it already holds. Collected by {@link HistogramProducer}, which
 * hands each metric reader the same data points an SDK histogram with these buckets yields.
 */
export class OwnHistogram {
  readonly descriptor: MetricDescriptor;
  readonly bounds: readonly number[];
  readonly #cells = new Map<string, HistogramCell>();
  constructor(name: string, unit: string, description: string, bounds: readonly number[]) {
    this.descriptor = { name, unit, description, valueType: ValueType.DOUBLE };
    this.bounds = bounds;
  }
  cell(key: string, attrs: () => Attributes): HistogramCell {
    let c = this.#cells.get(key);
    if (c === undefined) this.#cells.set(key, (c = new HistogramCell(attrs(), this.bounds)));
    return c;
  }
  cells(): IterableIterator<HistogramCell> {
    return this.#cells.values();
  }
}

interface Snapshot {
  at: HrTime;
  counts: number[];
  sum: number;
  count: number;
}

/** The request-path histograms as a metric producer of one reader, cumulative or delta as the reader wants. */
export class HistogramProducer implements MetricProducer {
  readonly #histograms: readonly OwnHistogram[];
  readonly #resource: Resource;
  readonly #temporality: AggregationTemporality;
  readonly #last = new WeakMap<HistogramCell, Snapshot>();
  constructor(histograms: readonly OwnHistogram[], resource: Resource, temporality: AggregationTemporality) {
    this.#histograms = histograms;
    this.#resource = resource;
    this.#temporality = temporality;
  }
  collect(): Promise<CollectionResult> {
    const now = hrTime();
    const delta = this.#temporality === AggregationTemporality.DELTA;
    const metrics: HistogramMetricData[] = [];
    for (const h of this.#histograms) {
      const dataPoints: HistogramMetricData['dataPoints'] = [];
      for (const c of h.cells()) {
        if (c.count === 0) continue;
        if (!delta) {
          dataPoints.push({
            startTime: c.since,
            endTime: now,
            attributes: c.attrs,
            value: { buckets: { boundaries: [...c.bounds], counts: [...c.counts] }, sum: c.sum, count: c.count, min: c.min, max: c.max },
          });
          continue;
        }
        const prev = this.#last.get(c);
        this.#last.set(c, { at: now, counts: [...c.counts], sum: c.sum, count: c.count });
        const count = c.count - (prev?.count ?? 0);
        if (count === 0) continue;
        dataPoints.push({
          startTime: prev?.at ?? c.since,
          endTime: now,
          attributes: c.attrs,
          value: { buckets: { boundaries: [...c.bounds], counts: c.counts.map((n, i) => n - (prev?.counts[i] ?? 0)) }, sum: c.sum - (prev?.sum ?? 0), count },
        });
      }
      if (dataPoints.length > 0)
        metrics.push({ descriptor: h.descriptor, aggregationTemporality: this.#temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints });
    }
    return Promise.resolve({
      resourceMetrics: { resource: this.#resource, scopeMetrics: metrics.length === 0 ? [] : [{ scope: { name: 'agent-sidecar' }, metrics }] },
      errors: [],
    });
  }
}

/** What the request path records into. */
export interface Instruments {
  serverDuration: OwnHistogram;
  serverActive: Tallies;
  clientDuration: OwnHistogram;
  requests: Tallies;
  requestDuration: OwnHistogram;
  errors: Tallies;
  rateLimited: Tallies;
  dropped: Counter;
}

/** The request-path histograms, created before the readers that collect them. */
export function createHistograms(): { serverDuration: OwnHistogram; clientDuration: OwnHistogram; requestDuration: OwnHistogram; all: OwnHistogram[] } {
  const serverDuration = new OwnHistogram(METRIC.serverDuration, 's', 'Duration of HTTP server requests.', HTTP_BUCKETS);
  const clientDuration = new OwnHistogram(METRIC.clientDuration, 's', 'Duration of the requests to the agent (the upstream).', HTTP_BUCKETS);
  const requestDuration = new OwnHistogram(
    METRIC.requestDuration,
    's',
    'Request duration as the client sees it, by agent_type and endpoint.',
    REFERENCE_BUCKETS,
  );
  return { serverDuration, clientDuration, requestDuration, all: [serverDuration, clientDuration, requestDuration] };
}

export function createInstruments(meter: Meter, histograms: ReturnType<typeof createHistograms>): Instruments {
  const serverActive = new Tallies();
  const requests = new Tallies();
  const errors = new Tallies();
  const rateLimited = new Tallies();
  serverActive.observe(meter.createObservableUpDownCounter(METRIC.serverActive, { unit: '{request}', description: 'Number of active HTTP server requests.' }));
  requests.observe(
    meter.createObservableCounter(METRIC.requests, {
      description: 'Requests to the agent, by agent_type, status (success|refused|error) and endpoint (route template).',
    }),
  );
  errors.observe(
    meter.createObservableCounter(METRIC.errors, { description: 'Failed requests by agent_type and error_type (a SIDECAR_* code or the upstream status).' }),
  );
  rateLimited.observe(meter.createObservableCounter(METRIC.rateLimited, { description: 'Requests refused with 429, by agent_type and endpoint.' }));
  return {
    serverDuration: histograms.serverDuration,
    serverActive,
    clientDuration: histograms.clientDuration,
    requests,
    requestDuration: histograms.requestDuration,
    errors,
    rateLimited,
    dropped: meter.createCounter(METRIC.telemetryDropped, {
      description: 'Spans, log records and metric points that never reached the collector, by signal and reason.',
    }),
  };
}
