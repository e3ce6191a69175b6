import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { runChecked } from '../../bench/lib/procs.ts';
import { executable, requireTool } from '../../bench/lib/tools.ts';
import {
  BUILDER_CONFIG,
  collectorBuild,
  ELASTICSEARCH_ARTIFACT,
  ELASTICSEARCH_VERSION,
  JAEGER_MODULE,
  JAEGER_VERSION,
  stackPaths,
  type StackPaths,
} from './cache.ts';

/**
 * Builds and downloads the full stack's programs into the cache, each step only when its
 * result is missing: the collector distribution (OpenTelemetry Collector Builder), Jaeger v2
 * (Go), Elasticsearch (Maven Central). Go builds run under `nice` so a shared machine stays
 * usable. Prometheus, promtool, amtool and redis-server come from Debian's packages.
 */

export type Log = (line: string) => void;

const GO_BUILD_TIMEOUT = 60 * 60_000;
const PROGRESS_EVERY_MS = 15_000;

/**
 * How long each long step took on a cold 2-core machine (empty module and build caches), for
 * the progress lines; a warm cache takes seconds.
 */
const COLD_SECONDS = { builder: 35, collectorModules: 45, collector: 225, jaegerGet: 25, jaeger: 315, elasticsearch: 15, unzip: 5 } as const;

/** What a Go command printed so far: modules downloaded, packages compiled (`-v`), the last of them. */
class GoOutput {
  downloads = 0;
  packages = 0;
  last = '';
  #partial = '';
  readonly feed = (chunk: string): void => {
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      const l = line.trim();
      if (l.startsWith('go: downloading ')) {
        this.downloads++;
        this.last = l.slice('go: downloading '.length);
      } else if (IMPORT_PATH.test(l)) {
        this.packages++;
        this.last = l;
      }
    }
  };
  toString(): string {
    if (this.downloads + this.packages === 0) return 'running';
    return `${this.downloads} modules downloaded, ${this.packages} packages compiled, last ${this.last}`;
  }
}
// What `go build -v` prints per package: an import path, nothing else on the line.
const IMPORT_PATH = /^[a-z][\w.~+-]*(\/[\w.~+-]+)*$/i;

/**
 * Runs one long step and prints a line when it starts, every 15 s while it runs (elapsed,
 * what it is doing, what a cold machine takes) and when it ends.
 */
async function step<T>(log: Log, what: string, coldSeconds: number, run: (progress: GoOutput) => Promise<T>): Promise<T> {
  const started = Date.now();
  const progress = new GoOutput();
  log(`${what} (about ${coldSeconds} s on a cold 2-core machine, seconds when cached)...`);
  const timer = setInterval(() => log(`${what}: ${seconds(started)} s so far; ${progress}`), PROGRESS_EVERY_MS);
  try {
    const result = await run(progress);
    log(`${what}: done in ${seconds(started)} s`);
    return result;
  } finally {
    clearInterval(timer);
  }
}

const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(0);

/** A Go build step, niced so that a shared machine stays usable; its output is counted for the progress lines and kept for the error message. */
async function niceGo(what: string, command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, progress: GoOutput): Promise<void> {
  await runChecked(what, requireTool('nice', 'coreutils'), ['-n', '10', command, ...args], GO_BUILD_TIMEOUT, { cwd, env, onOutput: progress.feed });
}

/** The collector distribution of collector/builder-config.yaml, built once per version of that file. */
export async function ensureCollector(paths: StackPaths, log: Log): Promise<string> {
  if (executable(paths.collector)) return paths.collector;
  const go = requireTool('go', 'install Go to build the collector');
  const { version } = collectorBuild();
  const env = { ...process.env, GOFLAGS: '-buildvcs=false' };
  if (!executable(paths.builder)) {
    await step(log, `go install go.opentelemetry.io/collector/cmd/builder@v${version}`, COLD_SECONDS.builder, (p) =>
      niceGo(
        'go install builder',
        go,
        ['install', '-v', `go.opentelemetry.io/collector/cmd/builder@v${version}`],
        paths.root,
        { ...env, GOBIN: dirname(paths.builder) },
        p,
      ),
    );
  }
  // The committed file builds into ./dist; here the output goes to the cache instead.
  const config = parse(readFileSync(BUILDER_CONFIG, 'utf8')) as { dist: { output_path: string; name: string } };
  config.dist.output_path = paths.collectorBuildDir;
  mkdirSync(paths.collectorBuildDir, { recursive: true });
  const configFile = join(paths.collectorBuildDir, 'builder-config.yaml');
  writeFileSync(configFile, stringify(config));
  // The builder generates the sources and fetches the modules; the compile is ours, with the
  // builder's own flags plus -v, so that the progress lines can count packages.
  await step(log, `generating the collector's sources and fetching its modules (${config.dist.name} ${version})`, COLD_SECONDS.collectorModules, (p) =>
    niceGo('builder', paths.builder, ['--config', configFile, '--skip-compilation', '--verbose'], paths.collectorBuildDir, env, p),
  );
  await step(log, `compiling the collector (${config.dist.name} ${version})`, COLD_SECONDS.collector, (p) =>
    // The builder's own compile: static (CGO off, its default), -trimpath, -ldflags=-s -w.
    niceGo(
      'go build collector',
      go,
      ['build', '-v', '-trimpath', '-ldflags=-s -w', '-o', config.dist.name, '.'],
      paths.collectorBuildDir,
      { ...env, CGO_ENABLED: '0' },
      p,
    ),
  );
  mkdirSync(dirname(paths.collector), { recursive: true });
  copyFileSync(join(paths.collectorBuildDir, config.dist.name), `${paths.collector}.tmp`);
  renameSync(`${paths.collector}.tmp`, paths.collector);
  return paths.collector;
}

/**
 * Jaeger v2. `go install github.com/jaegertracing/jaeger/cmd/jaeger@VERSION` is refused
 * because the module's go.mod has a replace directive, so the binary is installed from a
 * throwaway module that requires it as a tool dependency (`go get -tool`).
 */
export async function ensureJaeger(paths: StackPaths, log: Log): Promise<string> {
  if (executable(paths.jaeger)) return paths.jaeger;
  const go = requireTool('go', 'install Go to build Jaeger');
  const dir = paths.jaegerBuildDir;
  const env = { ...process.env, GOFLAGS: '-buildvcs=false' };
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'go.mod'))) writeFileSync(join(dir, 'go.mod'), 'module agent-sidecar.local/jaeger-build\n\ngo 1.24\n');
  await step(log, `go get -tool ${JAEGER_MODULE}/cmd/jaeger@${JAEGER_VERSION}`, COLD_SECONDS.jaegerGet, (p) =>
    niceGo('go get jaeger', go, ['get', '-tool', `${JAEGER_MODULE}/cmd/jaeger@${JAEGER_VERSION}`], dir, env, p),
  );
  await step(log, `building Jaeger ${JAEGER_VERSION}`, COLD_SECONDS.jaeger, (p) =>
    niceGo('go install jaeger', go, ['install', '-v', `${JAEGER_MODULE}/cmd/jaeger`], dir, { ...env, GOBIN: dirname(paths.jaeger) }, p),
  );
  return paths.jaeger;
}

/** Elasticsearch's integration-test distribution (no bundled JDK, no x-pack but core and security), unpacked. */
export async function ensureElasticsearch(paths: StackPaths, log: Log): Promise<string> {
  const bin = join(paths.elasticsearchHome, 'bin', 'elasticsearch');
  if (executable(bin)) return paths.elasticsearchHome;
  if (!existsSync(paths.elasticsearchZip)) {
    const mvn = requireTool('mvn', 'install Maven to download Elasticsearch from Maven Central');
    const downloads = dirname(paths.elasticsearchZip);
    mkdirSync(downloads, { recursive: true });
    await step(log, `mvn dependency:copy ${ELASTICSEARCH_ARTIFACT}`, COLD_SECONDS.elasticsearch, () =>
      runChecked('mvn', mvn, ['-B', '-q', 'dependency:copy', `-Dartifact=${ELASTICSEARCH_ARTIFACT}`, `-DoutputDirectory=${downloads}`], 30 * 60_000, {
        cwd: downloads,
      }),
    );
  }
  const parent = dirname(paths.elasticsearchHome);
  const staging = `${parent}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  await step(log, `unpacking Elasticsearch ${ELASTICSEARCH_VERSION}`, COLD_SECONDS.unzip, () => unzip(paths.elasticsearchZip, staging));
  rmSync(parent, { recursive: true, force: true });
  renameSync(staging, parent);
  if (!executable(bin)) throw new Error(`${paths.elasticsearchZip} did not contain ${bin}`);
  return paths.elasticsearchHome;
}

export async function unzip(zip: string, into: string): Promise<void> {
  await runChecked('unzip', requireTool('unzip', 'apt-get install unzip'), ['-q', '-o', zip, '-d', into], 10 * 60_000);
}

/** A JDK that Elasticsearch 8.19 runs on: ES_JAVA_HOME, else the newest of Java 17 to 21 installed, else JAVA_HOME. */
export function elasticsearchJava(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ES_JAVA_HOME) return env.ES_JAVA_HOME;
  const found: Array<{ home: string; major: number }> = [];
  const jvm = '/usr/lib/jvm';
  const homes = existsSync(jvm) ? readdirSync(jvm).map((d) => join(jvm, d)) : [];
  if (env.JAVA_HOME) homes.push(env.JAVA_HOME);
  for (const home of homes) {
    const release = join(home, 'release');
    if (!existsSync(release) || !executable(join(home, 'bin', 'java'))) continue;
    const m = /JAVA_VERSION="(\d+)/.exec(readFileSync(release, 'utf8'));
    if (m !== null) found.push({ home, major: Number(m[1]) });
  }
  const fit = found.filter((j) => j.major >= 17 && j.major <= 21).sort((a, b) => b.major - a.major)[0];
  if (fit !== undefined) return fit.home;
  throw new Error(`no JDK 17-21 found for Elasticsearch ${ELASTICSEARCH_VERSION} (looked in ${jvm} and JAVA_HOME); set ES_JAVA_HOME`);
}

/** The Debian-packaged tools; .ci/run installs them (apt-get install prometheus prometheus-alertmanager redis-server). */
export function debianTools(): { prometheus: string; promtool: string; amtool: string; redis: string } {
  const hint = 'apt-get install prometheus prometheus-alertmanager redis-server';
  return {
    prometheus: requireTool('prometheus', hint),
    promtool: requireTool('promtool', hint),
    amtool: requireTool('amtool', hint),
    redis: requireTool('redis-server', hint),
  };
}

export interface Stack {
  paths: StackPaths;
  collector: string;
  jaeger: string;
  elasticsearchHome: string;
  java: string;
  tools: ReturnType<typeof debianTools>;
}

/** Everything the full-stack test runs, built or downloaded as needed. */
export async function ensureStack(log: Log, env: NodeJS.ProcessEnv = process.env): Promise<Stack> {
  const paths = stackPaths(env);
  mkdirSync(paths.root, { recursive: true });
  const tools = debianTools();
  const java = elasticsearchJava(env);
  // One Go build at a time: both at once only thrash two cores.
  const collector = await ensureCollector(paths, log);
  const jaeger = await ensureJaeger(paths, log);
  const elasticsearchHome = await ensureElasticsearch(paths, log);
  return { paths, collector, jaeger, elasticsearchHome, java, tools };
}

/** The stack when it is already in the cache, or an error naming the command that builds it. */
export function locateStack(env: NodeJS.ProcessEnv = process.env): Stack {
  const paths = stackPaths(env);
  const missing = [paths.collector, paths.jaeger, join(paths.elasticsearchHome, 'bin', 'elasticsearch')].filter((p) => !executable(p));
  if (missing.length > 0) throw new Error(`not built yet: ${missing.join(', ')}; run npm run stack:build (or npm run test:e2e, which does)`);
  return {
    paths,
    collector: paths.collector,
    jaeger: paths.jaeger,
    elasticsearchHome: paths.elasticsearchHome,
    java: elasticsearchJava(env),
    tools: debianTools(),
  };
}
