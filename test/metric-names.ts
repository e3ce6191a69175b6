/**
 * The Prometheus metric names that dashboards and alert rules may use: the sidecar's own and
 * its LLM egress's (derived from src/telemetry/names.ts the way the collector's exporter and
 * our /metrics translate them), the collector's own, and our recording rules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { LLM_METRIC, METRIC } from '../src/telemetry/names.ts';
import { prometheusName } from '../src/telemetry/prometheus.ts';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
export const RULES_DIR = join(REPO, 'config', 'prometheus', 'rules');

type Kind = 'counter' | 'gauge' | 'histogram';
/** The instrument kind and unit of every metric the sidecar emits (src/telemetry/instruments.ts, index.ts). */
const KINDS: Record<keyof typeof METRIC, [Kind, string]> = {
  serverDuration: ['histogram', 's'],
  serverActive: ['gauge', '{request}'],
  clientDuration: ['histogram', 's'],
  requests: ['counter', ''],
  requestDuration: ['histogram', 's'],
  errors: ['counter', ''],
  activeSessions: ['gauge', '{session}'],
  systemInfo: ['gauge', ''],
  cacheHits: ['counter', ''],
  cacheMisses: ['counter', ''],
  authAttempts: ['counter', ''],
  authzDecisions: ['counter', ''],
  rateLimited: ['counter', ''],
  revocationChecks: ['counter', ''],
  telemetryDropped: ['counter', ''],
  mcpServerDuration: ['histogram', 's'],
  toolCalls: ['counter', ''],
  mcpClientDuration: ['histogram', 's'],
  egressToolCalls: ['counter', ''],
};

/** Series names of one metric as Prometheus stores them. */
function seriesNames(name: string, kind: Kind, unit: string): string[] {
  const base = prometheusName(name, unit);
  if (kind === 'counter') return [`${base}_total`];
  if (kind === 'histogram') return [`${base}_bucket`, `${base}_sum`, `${base}_count`];
  return [base];
}

/** Each metric of a name table with its series names, e.g. requests -> [agent_requests_total]. */
function seriesOf<K extends string>(names: Readonly<Record<K, string>>, kinds: Readonly<Record<K, [Kind, string]>>): Map<K, string[]> {
  return new Map(
    (Object.keys(names) as K[]).map((key) => {
      const [kind, unit] = kinds[key];
      return [key, seriesNames(names[key], kind, unit)] as const;
    }),
  );
}

/** The sidecar's metrics and their series names. */
export const sidecarSeries = () => seriesOf(METRIC, KINDS);

/** The kind and unit of every metric of the LLM egress (src/egress/metrics.ts). */
const LLM_KINDS: Record<keyof typeof LLM_METRIC, [Kind, string]> = {
  tokenUsage: ['histogram', '{token}'],
  operationDuration: ['histogram', 's'],
  timeToFirstChunk: ['histogram', 's'],
  tokens: ['counter', '{token}'],
  cost: ['counter', '{USD}'],
  anthropicTokens: ['counter', '{token}'],
  anthropicCost: ['counter', '{USD}'],
  requests: ['counter', '{request}'],
  rateLimited: ['counter', '{request}'],
  retryAfter: ['gauge', 's'],
  quotaRemaining: ['gauge', ''],
  quotaLimit: ['gauge', ''],
  quotaUtilization: ['gauge', '1'],
  budgetUtilization: ['gauge', '1'],
  budgetSpent: ['gauge', '{USD}'],
  budgetLimit: ['gauge', '{USD}'],
  budgetRefused: ['counter', '{request}'],
  budgetSoftLimit: ['counter', ''],
};

/** The LLM egress's metrics and their series names, e.g. tokens -> [llm_tokens_total]. */
export const egressSeries = () => seriesOf(LLM_METRIC, LLM_KINDS);

/** The collector's own metrics that rules use; the full-stack test checks them on the real collector. */
export const COLLECTOR_SERIES = ['otelcol_exporter_queue_size', 'otelcol_exporter_queue_capacity'];

/** Prometheus's own: the scrape health of every target. */
export const PROMETHEUS_SERIES = ['up'];

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function ruleFiles(): string[] {
  return readdirSync(RULES_DIR)
    .filter((f) => f.endsWith('.rules.yml'))
    .map((f) => join(RULES_DIR, f));
}

export function rules(): Rule[] {
  return ruleFiles().flatMap((f) => (parse(readFileSync(f, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules));
}

export function knownSeries(): Set<string> {
  return new Set([
    ...[...sidecarSeries().values()].flat(),
    ...[...egressSeries().values()].flat(),
    ...COLLECTOR_SERIES,
    ...PROMETHEUS_SERIES,
    ...rules().flatMap((r) => (r.record === undefined ? [] : [r.record])),
  ]);
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression reads (label matchers, ranges and functions left out). */
export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const [, name, call] of bare.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (call === undefined && !KEYWORDS.has(name!.toLowerCase())) names.add(name!);
  }
  return [...names];
}
