/**
 * docker-compose.yml cannot be run here (no Docker engine), so it is checked as far as it can
 * be without one: the Compose Specification schema (dclint), every file it mounts exists,
 * every image is pinned, every host name the configurations name is one of its services, and
 * the sidecar's configuration passes `agent-sidecar validate`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { collectorBuild, ELASTICSEARCH_VERSION } from '../scripts/stack/cache.ts';
import { spawnCli } from './helpers.ts';
import { REPO } from './metric-names.ts';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

/** The host part of host:port or of a URL. */
const hostOf = (address: string) => (address.includes('://') ? new URL(address).hostname : address.split(':')[0]!);

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification', () => {
    const r = spawnSync(process.execPath, [join(REPO, 'node_modules', 'dclint', 'bin', 'dclint.cjs'), '-q', '-f', 'compact', 'docker-compose.yml'], {
      cwd: REPO,
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
  });

  it('runs the whole system: demo agent, sidecar, Redis, collector, Prometheus, Alertmanager, Grafana, Elasticsearch, Kibana, Jaeger', () => {
    for (const name of ['demo-agent', 'sidecar', 'redis', 'otel-collector', 'prometheus', 'alertmanager', 'grafana', 'elasticsearch', 'kibana', 'jaeger'])
      expect(Object.keys(services)).toContain(name);
  });

  it('pins every image to a version, the collector to the release the distribution is built from', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build !== undefined) continue;
      expect(s.image, name).toMatch(/^[\w./-]+:v?\d[\w.-]*$/);
    }
    expect(services['otel-collector']!.image).toBe(`otel/opentelemetry-collector-contrib:${collectorBuild().version}`);
    expect(services.elasticsearch!.image).toBe(`docker.elastic.co/elasticsearch/elasticsearch:${ELASTICSEARCH_VERSION}`);
  });

  it('gives every long-running service a health check, but the collector, whose image has no shell', () => {
    const without = Object.entries(services)
      .filter(([, s]) => s.healthcheck === undefined)
      .map(([n]) => n);
    expect(without.sort()).toEqual(['elasticsearch-setup', 'otel-collector']);
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(Object.keys(services), `${name} depends on ${dep}`).toContain(dep);
        if (condition === 'service_healthy') expect(services[dep]!.healthcheck, `${name} waits for ${dep} to be healthy`).toBeDefined();
      }
    }
  });

  it('mounts only files and directories that exist in the repository, and declares its named volumes', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const volume of s.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('./')) expect(existsSync(join(REPO, source)), `${name}: ${source}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: ${source}`).toContain(source);
      }
    }
    const collector = services['otel-collector']!.command!.map((a) => a.replace('--config=/etc/otelcol/', 'collector/'));
    for (const file of collector) expect(existsSync(join(REPO, file)), file).toBe(true);
  });

  it('names, in every configuration it mounts, only hosts that are its services', () => {
    const names = new Set(Object.keys(services));
    const prometheus = parse(readFileSync(join(REPO, 'config', 'prometheus', 'prometheus.yml'), 'utf8')) as {
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    const targets = [...prometheus.scrape_configs, ...prometheus.alerting.alertmanagers].flatMap((j) => j.static_configs.flatMap((c) => c.targets));
    const datasources = (
      parse(readFileSync(join(REPO, 'config', 'grafana', 'provisioning', 'datasources', 'datasources.yml'), 'utf8')) as { datasources: Array<{ url: string }> }
    ).datasources;
    const env = Object.values(services).flatMap((s) =>
      Object.entries(s.environment ?? {})
        .filter(([k]) => /ENDPOINT$|UPSTREAM$|_URL$/.test(k))
        .map(([, v]) => v),
    );
    const hosts = [...targets, ...datasources.map((d) => d.url), ...env].map(hostOf).filter((h) => h !== 'localhost');
    expect(hosts.length).toBeGreaterThan(8);
    expect(hosts.filter((h) => !names.has(h))).toEqual([]);
  });

  it("the sidecar's configuration passes agent-sidecar validate", async () => {
    const cli = spawnCli(['validate', '--config', 'deploy/compose/sidecar.yaml'], { JWT_SECRET: 'a'.repeat(43) }, { cwd: REPO });
    expect(await cli.exited, cli.output()).toBe(0);
  });
});
