import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Pod, Service, ServiceAccount } from 'kubernetes-models/v1';
import { afterAll, describe, expect, it } from 'vitest';
import { injectManifests, SIDECAR_CONTAINER } from '../src/inject/index.ts';
import { container, fixture, objects, podSpec, settingsFor, type Obj } from './inject-helpers.ts';

// The Kubernetes OpenAPI schema, through kubernetes-models (types, required fields and
// enums of every object); it does not check name formats, so those are checked here.
const model = (o: Obj): { validate(): void } => {
  switch (o.kind) {
    case 'Deployment':
      return new Deployment(o as never);
    case 'StatefulSet':
      return new StatefulSet(o as never);
    case 'DaemonSet':
      return new DaemonSet(o as never);
    case 'Job':
      return new Job(o as never);
    case 'CronJob':
      return new CronJob(o as never);
    case 'Pod':
      return new Pod(o as never);
    case 'Service':
      return new Service(o as never);
    case 'ConfigMap':
      return new ConfigMap(o as never);
    case 'ServiceAccount':
      return new ServiceAccount(o as never);
    case 'Ingress':
      return new Ingress(o as never);
    default:
      throw new Error(`no model for ${o.kind}`);
  }
};

const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const dir = mkdtempSync(join(tmpdir(), 'sidecar-inject-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, 'sidecar.yaml');
writeFileSync(config, 'upstream:\n  healthPath: /health\n');

describe('injected manifests against the Kubernetes OpenAPI schema', () => {
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['every workload kind', 'helm-agents.yaml', { configmapFrom: config }],
    ['native sidecars', 'helm-agents.yaml', { nativeSidecar: true, otelEndpoint: 'http://collector:4317' }],
    ['a List', 'pod-list.yaml', { nativeSidecar: true }],
  ];

  it.each(cases)('%s', (_, file, flags) => {
    const out = injectManifests(fixture(file), settingsFor(flags)).text;
    const all = objects(out);
    const workloads = all.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod'].includes(o.kind));
    expect(workloads.length).toBeGreaterThan(0);
    for (const o of all) expect(() => model(o).validate(), `${o.kind}/${o.metadata?.name}`).not.toThrow();
    for (const o of workloads) {
      const spec = podSpec(o);
      const sidecar = container(spec, SIDECAR_CONTAINER) ?? container(spec, SIDECAR_CONTAINER, 'initContainers');
      if (sidecar === undefined) continue;
      expect(DNS_LABEL.test(sidecar.name)).toBe(true);
      for (const p of sidecar.ports as Obj[]) {
        expect(p.name.length).toBeLessThanOrEqual(15);
        expect(p.name).toMatch(IANA_SVC_NAME);
      }
      for (const v of spec.volumes as Obj[]) expect(v.name).toMatch(DNS_LABEL);
    }
  });

  it('the schema check itself catches a broken container (it is not a no-op)', () => {
    const out = objects(injectManifests(fixture('pod-list.yaml'), settingsFor()).text);
    const pod = out.find((o) => o.kind === 'Pod')!;
    container(pod.spec, SIDECAR_CONTAINER)!.ports[0].containerPort = 'eighty';
    expect(() => model(pod).validate()).toThrow(/containerPort/);
  });
});
