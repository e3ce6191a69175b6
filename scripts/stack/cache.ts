import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * Where the full stack's programs are built and downloaded: outside the repository, reused
 * across runs and worktrees. AGENT_SIDECAR_CACHE_DIR wins (point it at an empty directory to
 * rehearse a cold CI run), then $XDG_CACHE_HOME/agent-sidecar, then ~/.cache/agent-sidecar.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AGENT_SIDECAR_CACHE_DIR) return env.AGENT_SIDECAR_CACHE_DIR;
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'agent-sidecar');
}

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BUILDER_CONFIG = join(REPO, 'collector', 'builder-config.yaml');

/** Jaeger v2 is cmd/jaeger of the github.com/jaegertracing/jaeger module; v1.76.0 of the module is Jaeger v2.13. */
export const JAEGER_MODULE = 'github.com/jaegertracing/jaeger';
export const JAEGER_VERSION = 'v1.76.0';
/** The newest integration-test distribution on Maven Central; runs on Java 17 or 21 (it bundles no JDK). */
export const ELASTICSEARCH_VERSION = '8.19.21';
export const ELASTICSEARCH_ARTIFACT = `org.elasticsearch.distribution.integ-test-zip:elasticsearch:${ELASTICSEARCH_VERSION}:zip`;

export interface CollectorBuild {
  /** The collector release every component comes from (dist.version). */
  version: string;
  /** Short hash of builder-config.yaml: a changed component list is a new binary. */
  hash: string;
  name: string;
}

export function collectorBuild(): CollectorBuild {
  const text = readFileSync(BUILDER_CONFIG, 'utf8');
  const doc = parse(text) as { dist: { version: string; name: string } };
  return { version: doc.dist.version, name: doc.dist.name, hash: createHash('sha256').update(text).digest('hex').slice(0, 12) };
}

/** The paths of everything in the cache, whether present or not. */
export function stackPaths(env: NodeJS.ProcessEnv = process.env) {
  const root = cacheDir(env);
  const c = collectorBuild();
  return {
    root,
    builder: join(root, 'tools', `builder-v${c.version}`, 'builder'),
    collectorBuildDir: join(root, 'build', `otelcol-${c.version}-${c.hash}`),
    collector: join(root, 'bin', `${c.name}-${c.version}-${c.hash}`),
    jaegerBuildDir: join(root, 'build', `jaeger-${JAEGER_VERSION}`),
    jaeger: join(root, 'bin', `jaeger-${JAEGER_VERSION}`, 'jaeger'),
    elasticsearchZip: join(root, 'downloads', `elasticsearch-${ELASTICSEARCH_VERSION}.zip`),
    elasticsearchHome: join(root, 'elasticsearch', `elasticsearch-${ELASTICSEARCH_VERSION}`),
  };
}

export type StackPaths = ReturnType<typeof stackPaths>;
