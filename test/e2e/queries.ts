/** Thin clients for the backends' HTTP APIs, as a user would query them. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Retries `probe` until it returns without throwing; at the deadline, throws its last error. */
export async function eventually<T>(what: string, deadlineMs: number, probe: () => Promise<T>, everyMs = 500): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      last = err;
    }
    if (Date.now() >= until) throw new Error(`${what}: not true within ${deadlineMs / 1000} s; last: ${(last as Error)?.message ?? String(last)}`);
    await sleep(everyMs);
  }
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** An instant query; each series with its value as a number. */
export async function promQuery(prometheusUrl: string, query: string): Promise<Sample[]> {
  const body = await json<{ data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }>(
    `${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`,
  );
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** `sum by (label) (query)` as a plain object label value -> number. */
export async function promSumBy(prometheusUrl: string, label: string, selector: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of await promQuery(prometheusUrl, `sum by (${label}) (${selector})`)) out[s.metric[label] ?? ''] = s.value;
  return out;
}

export interface PromRule {
  name: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
}

export async function promRules(prometheusUrl: string): Promise<PromRule[]> {
  const body = await json<{ data: { groups: Array<{ rules: PromRule[] }> } }>(`${prometheusUrl}/api/v1/rules`);
  return body.data.groups.flatMap((g) => g.rules);
}

export type Doc = Record<string, unknown>;

/** Every document of an index pattern matching an Elasticsearch query (up to 10,000). */
export async function esSearch(esUrl: string, index: string, query: object): Promise<Doc[]> {
  const body = await json<{ hits: { hits: Array<{ _source: Doc }> } }>(`${esUrl}/${index}/_search?ignore_unavailable=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ size: 10_000, query, sort: [{ '@timestamp': 'asc' }] }),
  });
  return body.hits.hits.map((h) => h._source);
}

export async function esRequest<T>(esUrl: string, method: string, path: string, body?: object): Promise<T> {
  return json<T>(`${esUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; spanID: string }>;
  tags: Array<{ key: string; value: unknown }>;
  processID: string;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

/** GET /api/traces/{id}: the trace, or an error while Jaeger does not have it. */
export async function jaegerTrace(queryUrl: string, traceId: string): Promise<JaegerTrace> {
  const body = await json<{ data: JaegerTrace[] }>(`${queryUrl}/api/traces/${traceId}`);
  const trace = body.data[0];
  if (trace === undefined) throw new Error(`Jaeger has no trace ${traceId}`);
  return trace;
}

export function tag(span: JaegerSpan, key: string): unknown {
  return span.tags.find((t) => t.key === key)?.value;
}
