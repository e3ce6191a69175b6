import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatAddress, type SidecarConfig } from '../config/index.ts';
import { KEY_PLACEHOLDER, sdkBaseUrls, sdkKeyVariables, type Egress } from '../egress/index.ts';
import { stdoutDestination, type Logger } from '../log/index.ts';
import type { Sidecar } from '../sidecar.ts';
import type { TelemetrySettings } from '../telemetry/index.ts';

/** Signals passed on to the agent. SIGHUP also makes the sidecar re-read its policy, keys and provider credentials. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export interface AgentEnvOptions {
  config: Readonly<SidecarConfig>;
  egress: { address: AddressInfo; service: Egress } | undefined;
  /** The variable that tells the agent its port (PORT); empty: none. */
  portEnv: string;
  env: NodeJS.ProcessEnv;
  /** The sidecar's telemetry settings, as resolved at its start. */
  telemetry: Pick<TelemetrySettings, 'enabled' | 'serviceName'>;
  /** The OTLP relay's HTTP receiver, where the agent's own telemetry goes; undefined when the relay is off. */
  relay?: AddressInfo | undefined;
  /** The agent's command and working directory: auto-instrumentation depends on what it runs and what resolves there. */
  command?: readonly string[];
  cwd?: string;
}

/** The register hook of the OpenTelemetry JS auto-instrumentation package (what the Operator's inject-nodejs uses). */
const NODE_REGISTER = '@opentelemetry/auto-instrumentations-node/register';
/** The ESM loader hook of the instrumentation package that the register hook depends on. */
const ESM_HOOK = '@opentelemetry/instrumentation/hook.mjs';
const PYTHON = /^python(\d+(\.\d+)*)?$/;

const OTLP_SIGNALS = ['TRACES', 'METRICS', 'LOGS'] as const;

/**
 * The agent's environment: its port (the upstream's), the provider SDKs' base URLs on the
 * egress listener, a placeholder for each key the sidecar holds (the key itself, and the
 * variable the sidecar read it from, are not passed on), and where its own OpenTelemetry SDK
 * sends: the relay, which protects it and holds the collector's headers, or with the relay
 * off the sidecar's collector unless the environment says so already; under the sidecar's
 * service name. Returns what changed; a key's value is never among the notes.
 */
export function agentEnvironment(o: AgentEnvOptions): { env: NodeJS.ProcessEnv; notes: string[]; command: readonly string[] } {
  const env = { ...o.env };
  let command = o.command ?? [];
  const notes: string[] = [];
  const set = (name: string, value: string, keep: boolean) => {
    const before = env[name];
    if (before === value) return;
    if (before !== undefined && before !== '' && keep) {
      notes.push(`kept ${name}=${before} (already set)`);
      return;
    }
    env[name] = value;
    notes.push(before === undefined || before === '' ? `${name}=${value}` : `${name}=${value} (was ${before})`);
  };
  const upstream = new URL(o.config.upstream.url);
  if (o.portEnv !== '') set(o.portEnv, upstream.port || (upstream.protocol === 'https:' ? '443' : '80'), false);
  if (o.egress !== undefined) {
    const { address, port } = o.egress.address;
    for (const [name, value] of sdkBaseUrls(`http://${formatAddress({ host: loopback(address), port })}`, o.egress.service.providers)) set(name, value, false);
    for (const p of o.egress.service.providers) {
      if (p.credential === undefined) continue;
      const why = `the sidecar holds the ${p.name} key`;
      const { key, others } = sdkKeyVariables(p.name);
      for (const name of [...others, ...(p.credential.env === undefined ? [] : [p.credential.env])]) {
        if (name === key || env[name] === undefined) continue;
        delete env[name];
        notes.push(`${name} removed (${why})`);
      }
      env[key] = KEY_PLACEHOLDER;
      notes.push(`${key}=${KEY_PLACEHOLDER} (${why})`);
    }
  }
  const t = o.telemetry;
  if (o.relay !== undefined) {
    // The agent's SDK exports to the relay, which protects what it sends and forwards it with
    // the sidecar's endpoint, metadata and TLS: a collector variable the agent inherited from
    // the sidecar's environment is replaced, and the collector's headers (credentials) are not
    // passed on.
    const url = `http://${formatAddress({ host: loopback(o.relay.address), port: o.relay.port })}`;
    set('OTEL_EXPORTER_OTLP_ENDPOINT', url, false);
    set('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobuf', false);
    for (const signal of OTLP_SIGNALS) {
      if (env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`] !== undefined) set(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, `${url}/v1/${signal.toLowerCase()}`, false);
      if (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] !== undefined) set(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`, 'http/protobuf', false);
    }
    for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', ...OTLP_SIGNALS.map((s) => `OTEL_EXPORTER_OTLP_${s}_HEADERS`)]) {
      if (env[name] === undefined) continue;
      delete env[name];
      notes.push(`${name} removed (the relay sends the collector's headers)`);
    }
    set('OTEL_PROPAGATORS', 'tracecontext,baggage', true);
    if (o.config.telemetry.relay.autoInstrument && command.length > 0) {
      // Zero-code instrumentation, in the agent's environment only (never the sidecar's, which
      // would instrument itself and send two traceparent headers on each hop).
      const python = PYTHON.test(basename(command[0]!)) ? findOnPath('opentelemetry-instrument', env.PATH) : undefined;
      const register = python === undefined ? resolveFrom(o.cwd ?? process.cwd(), NODE_REGISTER) : undefined;
      if (python !== undefined) {
        command = [python, ...command];
        notes.push(`started under ${python}`);
      } else if (register !== undefined && !(env.NODE_OPTIONS ?? '').includes('auto-instrumentations-node')) {
        // The hook starts the SDK and patches CommonJS modules; ECMAScript modules (node:http
        // imported by an .mjs agent) are patched only through the ESM loader hook of the
        // instrumentation package, registered first, by one --import on the main thread (a
        // --require would run again in the loader's thread and start a second SDK there).
        const esm = resolveFrom(dirname(register), ESM_HOOK);
        const hook = `await import('${pathToFileURL(register).href}')`;
        const preload =
          esm === undefined
            ? `data:text/javascript,${hook}`
            : `data:text/javascript,import{register}from'node:module';register('${pathToFileURL(esm).href}');${hook}`;
        set('NODE_OPTIONS', [env.NODE_OPTIONS, `--import ${JSON.stringify(preload)}`].filter(Boolean).join(' '), false);
      }
    }
  } else {
    // Only a collector the configuration names: the exporters' own default differs by protocol (4317, 4318).
    const endpoint = o.config.telemetry.endpoint;
    if (t.enabled && endpoint !== undefined) set('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint, true);
  }
  set('OTEL_SERVICE_NAME', t.serviceName, true);
  return { env, notes, command };
}

/** A module's file as resolved from `dir` (its node_modules and those above), or undefined. */
function resolveFrom(dir: string, specifier: string): string | undefined {
  try {
    return createRequire(join(dir, 'noop.js')).resolve(specifier);
  } catch {
    return undefined;
  }
}

/** An executable file named `name` in a directory of `path`, or undefined. */
function findOnPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** A listener on every interface (IPv4, or both) is still reached over loopback from this machine. */
function loopback(address: string): string {
  return address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;
}

/**
 * `agent-sidecar run -- <command...>`: the sidecar is up first, then the agent starts as a
 * child in its own process group (so that a terminal's Ctrl-C reaches it once, through the
 * sidecar), with its environment wired. Signals are passed on; when the agent exits, the
 * sidecar drains and stops, and the process exits with the agent's status (128 + the signal
 * number when a signal ended it; 127 when the command cannot be started).
 */
export async function runAgent(
  command: readonly string[],
  sidecar: Sidecar & { egress: Egress | undefined; access: { reload(): Promise<void> }; telemetry: { settings: TelemetrySettings } },
  o: Omit<AgentEnvOptions, 'egress' | 'telemetry'> & { egressAddress: AddressInfo | undefined; logger: Logger },
): Promise<number> {
  const egress = sidecar.egress !== undefined && o.egressAddress !== undefined ? { address: o.egressAddress, service: sidecar.egress } : undefined;
  const wired = agentEnvironment({ ...o, egress, telemetry: sidecar.telemetry.settings, command, cwd: process.cwd() });
  const { env, notes } = wired;
  command = wired.command;
  o.logger.info(
    { event_type: 'agent_start', command: command[0], env: notes },
    `starting the agent: ${command.join(' ')}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`,
  );
  const child = spawn(command[0]!, command.slice(1), { env, stdio: 'inherit', detached: true });
  // The child inherited stdout, and starting it made a shared stdout blocking again.
  stdoutDestination().afterSpawn();
  const agentRunning = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined;

  let stops = 0;
  let graceTimer: NodeJS.Timeout | undefined;
  const forward = (signal: NodeJS.Signals) => {
    if (signal === 'SIGHUP') {
      void sidecar.access.reload();
      sidecar.egress?.reloadCredentials();
    }
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      stops += 1;
      // The second one, or one after the agent is gone: exit now, and take the agent's
      // process group along, so that nothing of it outlives the command.
      if (stops > 1 || !agentRunning()) {
        o.logger.warn({ event_type: 'shutdown', signal }, stops > 1 ? 'second signal: exiting at once' : 'signal while stopping: exiting at once');
        if (agentRunning()) {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        process.exit(signalStatus(signal));
      }
    }
    if (agentRunning()) child.kill(signal);
    // An agent that does not stop on the first SIGTERM or SIGINT (it handles the signal and
    // goes on, as an instrumentation hook's handler can make it) is killed with its process
    // group once shutdown.gracePeriod has passed, so that `run` always ends.
    if ((signal === 'SIGTERM' || signal === 'SIGINT') && graceTimer === undefined && agentRunning()) {
      graceTimer = setTimeout(() => {
        if (!agentRunning()) return;
        o.logger.warn(
          { event_type: 'agent_kill', signal: 'SIGKILL', grace_period_ms: o.config.shutdown.gracePeriod },
          `the agent did not stop within shutdown.gracePeriod after ${signal}: SIGKILL`,
        );
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, o.config.shutdown.gracePeriod);
    }
  };
  // Kept until the process exits: a signal during the sidecar's drain after the agent exited ends it at once.
  for (const s of FORWARDED) process.on(s, forward);

  const status = await new Promise<number>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      o.logger.error(
        { event_type: 'agent_exit', error_type: 'SIDECAR_AGENT_START_FAILED', err: { message: err.message, code: err.code } },
        `the agent could not be started: ${err.message}`,
      );
      const why = err.code === 'ENOENT' ? 'command not found' : err.code === 'EACCES' ? 'permission denied' : err.message;
      process.stderr.write(`agent-sidecar: cannot start the agent: ${command[0]}: ${why} [SIDECAR_AGENT_START_FAILED]\n`);
      resolve(err.code === 'EACCES' ? 126 : 127);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(graceTimer);
      const exitStatus = code ?? 128 + (signal === null ? 0 : (os.constants.signals[signal] ?? 0));
      o.logger.info({ event_type: 'agent_exit', exit_code: code, signal }, `the agent exited (${signal ?? `status ${code}`}); stopping the sidecar`);
      resolve(exitStatus);
    });
  });
  await sidecar.shutdown({ drainDelay: 0 });
  return status;
}

/** The exit status of a process ended by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export function signalStatus(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}
