/**
 * config/alertmanager/alertmanager.yml as Alertmanager's own amtool reads it, and where it
 * sends each severity: as in the reference design, critical at once and every 5 minutes to
 * chat and the pager, warnings batched and hourly to chat.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO, rules } from './metric-names.ts';

const CONFIG = join(REPO, 'config', 'alertmanager', 'alertmanager.yml');

function amtool(...args: string[]): { status: number | null; stdout: string; output: string } {
  const r = spawnSync('amtool', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`amtool: ${r.error.message} (apt-get install prometheus-alertmanager)`);
  return { status: r.status, stdout: r.stdout, output: r.stdout + r.stderr };
}

/** The receiver amtool's router picks for an alert with these labels. */
function receiverOf(labels: Record<string, string>): string {
  const r = amtool('config', 'routes', 'test', `--config.file=${CONFIG}`, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`));
  expect(r.status, r.output).toBe(0);
  return r.stdout.trim();
}

interface Route {
  receiver: string;
  matchers?: string[];
  group_by?: string[];
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}

const config = parse(readFileSync(CONFIG, 'utf8')) as {
  route: Route;
  inhibit_rules: Array<{ source_matchers: string[]; target_matchers: string[] }>;
  receivers: Array<{ name: string; slack_configs?: unknown[]; pagerduty_configs?: unknown[] }>;
};

describe('Alertmanager configuration', () => {
  it('amtool check-config accepts it', () => {
    const r = amtool('check-config', CONFIG);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('routes every alert by its severity: critical to chat and the pager, warning to chat', () => {
    const receivers = Object.fromEntries(config.receivers.map((r) => [r.name, r]));
    for (const alert of rules().filter((r) => r.alert !== undefined)) {
      const name = receiverOf({ alertname: alert.alert!, severity: alert.labels!.severity! });
      const receiver = receivers[name]!;
      expect(receiver.slack_configs?.length, alert.alert).toBe(1);
      expect(receiver.pagerduty_configs?.length ?? 0, alert.alert).toBe(alert.labels!.severity === 'critical' ? 1 : 0);
    }
  });

  it('groups by alert name and severity; critical goes out at once and repeats every 5 minutes, warnings batch for 5 minutes and repeat hourly', () => {
    expect(config.route.group_by).toEqual(['alertname', 'severity']);
    const bySeverity = Object.fromEntries((config.route.routes ?? []).map((r) => [r.matchers?.[0], r]));
    expect(bySeverity['severity="critical"']).toMatchObject({ group_wait: '0s', repeat_interval: '5m' });
    expect(bySeverity['severity="warning"']).toMatchObject({ group_interval: '5m', repeat_interval: '1h' });
  });

  it('inhibits only alerts that exist, by alerts that exist', () => {
    const names = new Set(rules().flatMap((r) => (r.alert === undefined ? [] : [r.alert])));
    const named = config.inhibit_rules
      .flatMap((r) => [...r.source_matchers, ...r.target_matchers])
      .flatMap((m) => {
        const match = /^alertname=~?"(.+)"$/.exec(m);
        return match === null ? [] : match[1]!.split('|');
      });
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((n) => !names.has(n))).toEqual([]);
  });
});
