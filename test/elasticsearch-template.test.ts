/**
 * The agent-logs index template against the reference design and against what the collector
 * writes: the daily index names it matches, the reference's fields with their types, and the
 * retention policy it names. The full-stack test applies it to a real Elasticsearch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO } from './metric-names.ts';

const DIR = join(REPO, 'config', 'elasticsearch');
const template = JSON.parse(readFileSync(join(DIR, 'agent-logs.template.json'), 'utf8')) as {
  index_patterns: string[];
  template: { settings: Record<string, unknown>; mappings: { properties: Record<string, { type: string }> } };
};
const policy = JSON.parse(readFileSync(join(DIR, 'agent-logs.ilm-policy.json'), 'utf8')) as {
  policy: { phases: Record<string, { min_age: string; actions: Record<string, unknown> }> };
};
const collector = parse(readFileSync(join(REPO, 'collector', 'otelcol.yaml'), 'utf8')) as {
  exporters: {
    elasticsearch: {
      logs_index: string;
      logstash_format: { enabled: boolean; prefix_separator: string; date_format: string };
      mapping: { allowed_modes: string[] };
    };
  };
};

/** The index the collector writes a record of `day` to: logs_index, separator, strftime date. */
function indexFor(day: Date): string {
  const es = collector.exporters.elasticsearch;
  const pad = (n: number) => String(n).padStart(2, '0');
  const date = es.logstash_format.date_format
    .replace('%Y', String(day.getUTCFullYear()))
    .replace('%m', pad(day.getUTCMonth() + 1))
    .replace('%d', pad(day.getUTCDate()));
  return `${es.logs_index}${es.logstash_format.prefix_separator}${date}`;
}

const matches = (pattern: string, name: string) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.]/g, '\\.'))
      .join('.*')}$`,
  ).test(name);

describe('the agent-logs index template', () => {
  it('covers the daily indices the collector writes, agent-logs-YYYY.MM.DD, in a mapping mode a plain index takes', () => {
    const index = indexFor(new Date(Date.UTC(2026, 10, 25)));
    expect(index).toBe('agent-logs-2026.11.25');
    expect(template.index_patterns.some((p) => matches(p, index))).toBe(true);
    expect(collector.exporters.elasticsearch.logstash_format.enabled).toBe(true);
    // `otel` needs data streams; `raw` puts the record's attributes at the top of the document.
    expect(collector.exporters.elasticsearch.mapping.allowed_modes).toEqual(['raw']);
  });

  it("maps the reference's fields with the reference's types", () => {
    const types = template.template.mappings.properties;
    const reference: Record<string, string> = {
      '@timestamp': 'date',
      level: 'keyword',
      message: 'text',
      agent_type: 'keyword',
      user_id: 'keyword',
      session_id: 'keyword',
      request_id: 'keyword',
      event_type: 'keyword',
      ip_address: 'ip',
      tags: 'keyword',
    };
    expect(Object.fromEntries(Object.keys(reference).map((f) => [f, types[f]?.type]))).toEqual(reference);
    // The reference's integer milliseconds would truncate sub-millisecond requests to 0.
    expect(types.duration_ms?.type).toBe('float');
  });

  it('has 2 shards, 1 replica and the retention policy that deletes after 30 days', () => {
    expect(template.template.settings).toMatchObject({ 'index.number_of_shards': 2, 'index.number_of_replicas': 1, 'index.lifecycle.name': 'agent-logs' });
    expect(policy.policy.phases.delete).toEqual({ min_age: '30d', actions: { delete: {} } });
  });
});
