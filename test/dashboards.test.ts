/**
 * The Grafana dashboards and provisioning: the JSON parses, every PromQL expression is
 * valid for Prometheus's own parser (promtool) and reads only metrics that exist, the data
 * sources they name are provisioned, and the reference's panels are there.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { knownSeries, metricNamesIn, REPO } from './metric-names.ts';

const GRAFANA = join(REPO, 'config', 'grafana');

interface Target {
  refId: string;
  expr?: string;
  query?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  title: string;
  type: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}

const dashboards = readdirSync(join(GRAFANA, 'dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, dashboard: JSON.parse(readFileSync(join(GRAFANA, 'dashboards', f), 'utf8')) as Dashboard }));

const panelsOf = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const promTargets = dashboards.flatMap(({ file, dashboard }) =>
  panelsOf(dashboard).flatMap((p) =>
    (p.targets ?? [])
      .filter((t) => t.expr !== undefined)
      .map((t) => ({ where: `${file}: ${p.title}`, expr: t.expr!, datasource: t.datasource ?? p.datasource })),
  ),
);

/** Grafana's variables replaced by values Prometheus accepts, as Grafana does before querying. */
function interpolate(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval/g, '5m').replace(/\$\{?agent_type\}?/g, '.*');
}

const scratch = mkdtempSync(join(tmpdir(), 'agent-sidecar-dashboards-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('Grafana dashboards', () => {
  it('there are dashboards, each with a unique uid and unique panel ids', () => {
    expect(dashboards.map((d) => d.file).sort()).toEqual(['agent-overview.json', 'agent-security.json', 'llm-usage.json']);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length);
    for (const { file, dashboard } of dashboards) {
      const ids = panelsOf(dashboard).map((p) => p.id);
      expect(new Set(ids).size, file).toBe(ids.length);
    }
  });

  it("every PromQL expression parses with Prometheus's own parser", () => {
    // promtool checks recording rules with the real parser: one rule per panel query.
    const file = join(scratch, 'dashboards.rules.yml');
    writeFileSync(
      file,
      stringify({ groups: [{ name: 'dashboards', rules: promTargets.map((t, i) => ({ record: `dashboard:query:${i}`, expr: interpolate(t.expr) })) }] }),
    );
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    if (r.error) throw new Error(`promtool: ${r.error.message} (apt-get install prometheus)`);
    expect(r.stdout + r.stderr).toContain(`SUCCESS: ${promTargets.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('every metric a panel reads is one the sidecar, its LLM egress or the collector exports, or a recording rule', () => {
    const known = knownSeries();
    expect(promTargets.length).toBeGreaterThan(20);
    expect(
      promTargets.flatMap((t) =>
        metricNamesIn(t.expr)
          .filter((n) => !known.has(n))
          .map((n) => `${t.where}: ${n}`),
      ),
    ).toEqual([]);
  });

  it("has the reference's panels, and auth, rate limit, LLM tokens, cost and quota panels", () => {
    const read = new Set(promTargets.flatMap((t) => metricNamesIn(t.expr)));
    const wanted = [
      // The reference: request rate, p95 latency, API cost per hour, cache hit rate, error rate, active sessions.
      'agent_requests_total',
      'agent_request_duration_seconds_bucket',
      'anthropic_api_cost_total',
      'cache_hits_total',
      'cache_misses_total',
      'agent_errors_total',
      'agent_active_sessions',
      // Ours.
      'agent_auth_attempts_total',
      'agent_authorization_decisions_total',
      'agent_rate_limited_total',
      'llm_tokens_total',
      'anthropic_tokens_total',
      'llm_api_cost_usd_total',
      'llm_quota_utilization_ratio',
      'llm_budget_utilization_ratio',
    ];
    expect(wanted.filter((m) => !read.has(m))).toEqual([]);
    const overview = dashboards.find((d) => d.file === 'agent-overview.json')!.dashboard;
    const p95 = panelsOf(overview).find((p) => p.title === 'P95 latency')!;
    expect(p95.targets![0]!.expr).toMatch(
      /^histogram_quantile\(0\.95, sum by \(agent_type, le\) \(rate\(agent_request_duration_seconds_bucket\{[^}]*\}\[5m\]\)\)\)$/,
    );
  });

  it("shows the agent's outbound MCP tool calls by server and tool, the refused ones apart", () => {
    const security = dashboards.find((d) => d.file === 'agent-security.json')!.dashboard;
    const exprs = panelsOf(security)
      .flatMap((p) => p.targets ?? [])
      .map((t) => t.expr ?? '')
      .filter((e) => metricNamesIn(e).includes('agent_egress_tool_calls_total'));
    expect(exprs).toHaveLength(2);
    for (const e of exprs) expect(e).toMatch(/^sum by \(server, tool\) \(rate\(agent_egress_tool_calls_total\{agent_type=~"\$agent_type"[^}]*\}\[5m\]\)\)$/);
    expect(exprs.filter((e) => e.includes('decision="refused"'))).toHaveLength(1);
  });

  it("keeps the sidecar's refusals apart from successes and errors", () => {
    const overview = dashboards.find((d) => d.file === 'agent-overview.json')!.dashboard;
    const byStatus = panelsOf(overview).find((p) => p.targets?.some((t) => /sum by \(agent_type, status\) \(rate\(agent_requests_total\{/.test(t.expr ?? '')));
    expect(byStatus).toBeDefined();
    const security = dashboards.find((d) => d.file === 'agent-security.json')!.dashboard;
    const refusals = panelsOf(security)
      .flatMap((p) => p.targets ?? [])
      .filter((t) => /agent_requests_total\{[^}]*status="refused"/.test(t.expr ?? ''));
    expect(refusals).toHaveLength(1);
    // No panel calls everything but errors a success.
    expect(promTargets.filter((t) => /status\s*(?:!=|!~)\s*"[^"]*error|status\s*=~?\s*"[^"]*success/.test(t.expr)).map((t) => t.where)).toEqual([]);
  });

  it('names only provisioned data sources', () => {
    const provisioned = parse(readFileSync(join(GRAFANA, 'provisioning', 'datasources', 'datasources.yml'), 'utf8')) as {
      datasources: Array<{
        uid: string;
        type: string;
        jsonData?: { dataLinks?: Array<{ datasourceUid: string }>; tracesToLogsV2?: { datasourceUid: string } };
      }>;
    };
    const uids = new Map(provisioned.datasources.map((d) => [d.uid, d.type]));
    for (const { file, dashboard } of dashboards) {
      const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
      for (const p of panelsOf(dashboard)) {
        for (const ds of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) {
          if (ds === undefined) continue;
          if (ds.uid === '${datasource}') expect(variable?.query, `${file}: ${p.title}`).toBe(ds.type);
          else expect(uids.get(ds.uid), `${file}: ${p.title}`).toBe(ds.type);
        }
      }
    }
    // Logs link to traces and traces to logs.
    const links = provisioned.datasources.flatMap((d) =>
      [...(d.jsonData?.dataLinks ?? []).map((l) => l.datasourceUid), d.jsonData?.tracesToLogsV2?.datasourceUid ?? []].flat(),
    );
    expect(links.sort()).toEqual(['agent-logs', 'jaeger']);
    for (const uid of links) expect(uids.has(uid)).toBe(true);
  });
});
