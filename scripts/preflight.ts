// npm test's first step: every program the tests use, checked before any test runs.
// Missing ones are installed from Debian's packages when this runs as root where apt-get
// exists (as on CI), saying what it installs; anywhere else it stops with one line naming
// what is missing and the command that installs it, before any test.
//
//   node scripts/preflight.ts [--unit] [--no-install]
//
// --unit checks only what the unit tests use (npm run test:unit); --no-install (or
// AGENT_SIDECAR_NO_INSTALL=1) never installs. Exit status 0: all there; 1: something missing.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { elasticsearchJava } from './stack/build.ts';

interface Need {
  /** The program, as found on PATH. */
  program: string;
  /** Debian's package that has it; undefined where Debian's is too old or absent. */
  apt: string | undefined;
  /** What needs it, for the report. */
  for: string;
  unit: boolean;
  /** A further check once found (a version); returns what is wrong, or undefined. */
  check?: (path: string) => string | undefined;
}

/** The collector v0.157 modules need Go 1.25 (go.mod of the generated distribution). */
const GO_MIN = [1, 25] as const;

const NEEDS: readonly Need[] = [
  { program: 'redis-server', apt: 'redis-server', for: 'the store tests', unit: true },
  { program: 'redis-cli', apt: 'redis-tools', for: 'building a Redis Cluster for the store tests', unit: true },
  { program: 'promtool', apt: 'prometheus', for: 'the alert rule and dashboard tests', unit: true },
  { program: 'amtool', apt: 'prometheus-alertmanager', for: 'the alert routing tests', unit: true },
  { program: 'prometheus', apt: 'prometheus', for: 'the full-stack test', unit: false },
  { program: 'unzip', apt: 'unzip', for: 'unpacking Elasticsearch', unit: false },
  { program: 'mvn', apt: 'maven', for: 'fetching Elasticsearch from Maven Central', unit: false },
  { program: 'go', apt: undefined, for: `building the collector and Jaeger (Go ${GO_MIN.join('.')} or newer)`, unit: false, check: goTooOld },
  {
    program: 'python3',
    apt: 'python3-venv',
    for: "the zero-code test's Python agent, a venv of packages from PyPI",
    unit: true,
    check: venvMissing,
  },
];

const args = new Set(process.argv.slice(2));
const unitOnly = args.has('--unit');
const mayInstall = !args.has('--no-install') && process.env.AGENT_SIDECAR_NO_INSTALL !== '1' && process.getuid?.() === 0 && find('apt-get') !== undefined;
const say = (line: string) => process.stdout.write(`preflight: ${line}\n`);

let missing = survey();
const installable = [...new Set(missing.flatMap((m) => (m.need.apt === undefined ? [] : [m.need.apt])))];
if (installable.length > 0 && mayInstall) {
  say(`installing with apt-get (Debian's packages): ${installable.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const cmd of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...installable],
  ]) {
    const r = spawnSync('apt-get', cmd, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) say(`apt-get ${cmd[0]} exited with ${r.status ?? r.signal}`);
  }
  missing = survey();
}
if (missing.length > 0) {
  say(`missing ${missing.map((m) => `${m.need.program} (${m.problem ?? m.need.for})`).join(', ')}; no test was run`);
  const apt = [...new Set(missing.flatMap((m) => (m.need.apt === undefined ? [] : [m.need.apt])))];
  const steps = [
    ...(apt.length > 0 ? [`apt-get update && apt-get install -y ${apt.join(' ')}`] : []),
    ...missing.filter((m) => m.need.apt === undefined).map((m) => `install ${m.need.program}: ${m.need.for}`),
  ];
  say(`to fix: ${steps.join('; ')}`);
  process.exit(1);
}
say(
  `all there: ${NEEDS.filter((n) => !unitOnly || n.unit)
    .map((n) => n.program)
    .join(', ')}${unitOnly ? '' : ', java'}; node ${process.version}`,
);

function survey(): Array<{ need: Need; problem?: string }> {
  const out: Array<{ need: Need; problem?: string }> = [];
  for (const need of NEEDS) {
    if (unitOnly && !need.unit) continue;
    const path = find(need.program);
    if (path === undefined) out.push({ need });
    else {
      const problem = need.check?.(path);
      if (problem !== undefined) out.push({ need, problem });
    }
  }
  if (!unitOnly) {
    try {
      elasticsearchJava();
    } catch {
      out.push({ need: { program: 'java', apt: 'openjdk-17-jre-headless', for: 'Elasticsearch (a JDK 17 to 21)', unit: false } });
    }
  }
  return out;
}

/** On PATH, or Go where its own installer puts it. */
function find(program: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  if (program === 'go') dirs.push('/usr/local/go/bin');
  for (const dir of dirs) {
    const p = join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function goTooOld(path: string): string | undefined {
  const r = spawnSync(path, ['env', 'GOVERSION'], { encoding: 'utf8' });
  const m = /^go(\d+)\.(\d+)/.exec(r.stdout ?? '');
  if (m === null) return `${path} did not say its version`;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > GO_MIN[0] || (major === GO_MIN[0] && minor >= GO_MIN[1]) ? undefined : `go${major}.${minor} is older than ${GO_MIN.join('.')}`;
}

function venvMissing(path: string): string | undefined {
  const r = spawnSync(path, ['-c', 'import ensurepip, venv'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'python3 -m venv is not there (python3-venv)';
}
