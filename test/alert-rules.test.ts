/**
 * The Prometheus configuration and alert rules as Prometheus's own promtool sees them: the
 * files load, every alert passes its unit tests (fires on the series it exists for, quiet on
 * the near misses), and every alert is routed, documented and reads only metrics that exist.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { knownSeries, metricNamesIn, REPO, ruleFiles, rules } from './metric-names.ts';

const PROMETHEUS_DIR = join(REPO, 'config', 'prometheus');
const TESTS_DIR = join(PROMETHEUS_DIR, 'tests');
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith('.test.yml'))
  .map((f) => join(TESTS_DIR, f));
const alerts = rules().filter((r) => r.alert !== undefined);

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: PROMETHEUS_DIR });
  if (r.error) throw new Error(`promtool: ${r.error.message} (apt-get install prometheus)`);
  return { status: r.status, output: r.stdout + r.stderr };
}

interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts: Array<{ exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }>;
}

function alertTests(): AlertTest[] {
  return testFiles.flatMap((f) =>
    (parse(readFileSync(f, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> }).tests.flatMap((t) => t.alert_rule_test ?? []),
  );
}

const scratch = mkdtempSync(join(tmpdir(), 'agent-sidecar-rules-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('Prometheus configuration and alert rules', () => {
  it('promtool accepts prometheus.yml and finds every rule file', () => {
    const r = promtool('check', 'config', 'prometheus.yml');
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${ruleFiles().length} rule files found`);
  });

  it('every alert passes its promtool unit tests', () => {
    const r = promtool('test', 'rules', ...testFiles);
    expect(r.output).not.toContain('FAILED');
    expect(r.status).toBe(0);
  });

  it('every alert is tested firing, with its annotations rendered, and tested quiet', () => {
    const tests = alertTests();
    for (const { alert } of alerts) {
      const mine = tests.filter((t) => t.alertname === alert);
      const firing = mine.filter((t) => t.exp_alerts.length > 0);
      expect(firing.length, `${alert} is never tested firing`).toBeGreaterThan(0);
      expect(mine.filter((t) => t.exp_alerts.length === 0).length, `${alert} is never tested quiet`).toBeGreaterThan(0);
      for (const t of firing)
        for (const a of t.exp_alerts) expect(Object.keys(a.exp_annotations ?? {}).sort(), alert).toEqual(['description', 'runbook_url', 'summary']);
    }
  });

  it('no rule reads agent_requests_total by success or by not-error: a refusal is status="refused", neither', () => {
    const exprs = rules().map((r) => `${r.alert ?? r.record}: ${r.expr}`);
    // status="error" keeps its meaning; "everything but error" and "success" would now change theirs.
    expect(exprs.filter((e) => /status\s*(?:!=|!~)\s*"[^"]*error|status\s*=~?\s*"[^"]*success/.test(e))).toEqual([]);
  });

  it('the unit tests catch an alert whose threshold is wrong', () => {
    // The same tests against rules where HighErrorRate fires only at 100 failures a second.
    const dir = join(scratch, 'mutated');
    cpSync(PROMETHEUS_DIR, dir, { recursive: true });
    const file = join(dir, 'rules', 'agent.rules.yml');
    const text = readFileSync(file, 'utf8');
    const mutated = text.replace('expr: agent_type:agent_errors:rate5m > 0.1', 'expr: agent_type:agent_errors:rate5m > 100');
    expect(mutated).not.toBe(text);
    writeFileSync(file, mutated);
    const r = promtool('test', 'rules', join(dir, 'tests', 'agent.test.yml'));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED[\s\S]*alertname: HighErrorRate/);
  });

  it('every alert has a severity Alertmanager routes, a summary, a description and a runbook section', () => {
    const runbooks = readFileSync(join(REPO, 'docs', 'runbooks.md'), 'utf8');
    const sections = [...runbooks.matchAll(/^## (\S+)$/gm)].map((m) => m[1]!);
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      expect(a.annotations?.runbook_url, a.alert).toBe(`docs/runbooks.md#${a.alert!.toLowerCase()}`);
    }
    // One section per alert, and no section for an alert that does not exist.
    expect(sections.sort()).toEqual(alerts.map((a) => a.alert!).sort());
  });

  it('the reference alerts, the LLM quota and budget, auth failures, dropped telemetry and burn rates are all there', () => {
    const names = alerts.map((a) => a.alert);
    for (const name of ['HighErrorRate', 'SlowResponse', 'HighAPICost', 'LowCacheHitRate', 'ServiceDown']) expect(names).toContain(name);
    for (const name of [
      'LLMQuotaHigh',
      'LLMBudgetHigh',
      'AuthFailureSpike',
      'TelemetryDropped',
      'ErrorBudgetBurnFast',
      'ErrorBudgetBurnMedium',
      'ErrorBudgetBurnSlow',
    ])
      expect(names).toContain(name);
    // At or above 80%, as the incident taught.
    for (const name of ['LLMQuotaHigh', 'LLMBudgetHigh']) expect(alerts.find((a) => a.alert === name)!.expr).toMatch(/>= 0\.8$/);
  });

  it('every metric a rule reads is one the sidecar, its LLM egress or the collector exports, or a recording rule', () => {
    const known = knownSeries();
    const unknown = rules().flatMap((r) =>
      metricNamesIn(r.expr)
        .filter((n) => !known.has(n))
        .map((n) => `${r.alert ?? r.record}: ${n}`),
    );
    expect(unknown).toEqual([]);
    // The check itself sees a misspelt name.
    expect(metricNamesIn('sum(rate(agent_request_total[5m]))').filter((n) => !known.has(n))).toEqual(['agent_request_total']);
  });
});
