#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { checkSidecar, startFailure } from '../check.ts';
import { loadConfig, type ConfigOverrides } from '../config/index.ts';
import { isSidecarError, SidecarError } from '../errors/index.ts';
import { createLogger, flushStdout } from '../log/index.ts';
import { assembleSidecar } from '../sidecar.ts';
import { version } from '../version.ts';
import { registerDecryptCommand } from './decrypt.ts';
import { registerInjectCommand } from './inject.ts';
import { registerKeysCommand } from './keys.ts';
import { registerRedactCommand } from './redact.ts';
import { registerRevokeCommand } from './revoke.ts';
import { runAgent, signalStatus } from './run-agent.ts';
import { registerTokenCommand } from './token.ts';
import { usageError } from './usage.ts';

interface CommonFlags {
  config?: string;
  listen?: string;
  upstream?: string;
  admin?: string;
  egress?: string;
  logLevel?: string;
}

interface RunFlags extends CommonFlags {
  agentPort?: string;
  portEnv: string;
}

const EXIT_CONFIG = 2;
/** How long the last log lines may wait for a slow reader of stdout before the process exits (never past the grace period). */
const LOG_FLUSH_MS = 2_000;
/** What the shutdown hooks get past the grace period and telemetry.shutdownTimeout before the process exits anyway. */
const SHUTDOWN_HOOKS_MS = 10_000;

function withConfigFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --config <file>', 'YAML configuration file').env('SIDECAR_CONFIG'))
    .option('--listen <host:port>', 'ingress address (overrides listen.address; env SIDECAR_LISTEN)')
    .option('--upstream <url>', 'agent service URL (overrides upstream.url; env SIDECAR_UPSTREAM)')
    .option('--admin <host:port>', 'admin address (overrides admin.address; env SIDECAR_ADMIN)')
    .option('--egress <host:port>', 'LLM egress address (overrides egress.address; env SIDECAR_EGRESS)')
    .option('--log-level <level>', 'log level (overrides log.level; env SIDECAR_LOG_LEVEL)');
}

function load(flags: CommonFlags) {
  const overrides: ConfigOverrides = { listen: flags.listen, upstream: flags.upstream, admin: flags.admin, egress: flags.egress, logLevel: flags.logLevel };
  return loadConfig({ file: flags.config, overrides });
}

async function run(command: string[], flags: RunFlags): Promise<void> {
  // Without --, a word after the options is a mistyped command (valdate), not an agent to start.
  if (command.length > 0 && !process.argv.includes('--')) {
    throw usageError(
      `unknown command '${command[0]}' (an agent to start goes after --: agent-sidecar run [options] -- ${command.join(' ')}); see agent-sidecar --help`,
    );
  }
  if (flags.agentPort !== undefined) {
    if (!/^\d{1,5}$/.test(flags.agentPort) || Number(flags.agentPort) < 1 || Number(flags.agentPort) > 65535) {
      throw new SidecarError('SIDECAR_USAGE_INVALID', { message: `--agent-port ${flags.agentPort}: expected a port number from 1 to 65535` });
    }
    if (flags.upstream !== undefined) throw new SidecarError('SIDECAR_USAGE_INVALID', { message: '--agent-port and --upstream both name the agent; give one' });
    flags.upstream = `http://127.0.0.1:${flags.agentPort}`;
  }
  const config = load(flags);
  const logger = createLogger(config.log.level);
  const sidecar = await assembleSidecar(config, logger, {}, { runsAgent: command.length > 0 }).catch((err: unknown) => {
    throw startFailure(err, config);
  });
  const { listeners } = await sidecar.start();
  if (command.length > 0) {
    const status = await runAgent(command, sidecar, {
      config,
      egressAddress: listeners.egress,
      relay: listeners['relay-http'],
      portEnv: flags.portEnv,
      env: process.env,
      logger,
    });
    await flushStdout(LOG_FLUSH_MS);
    process.exit(status);
  }
  process.on('SIGHUP', () => {
    logger.info({ event_type: 'reload', signal: 'SIGHUP' }, 'reloading policy, API keys, protection keys and provider credentials');
    void sidecar.access.reload();
    void sidecar.protection.reload();
    sidecar.egress?.reloadCredentials();
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ event_type: 'shutdown', signal }, 'second signal: exiting at once');
      process.exit(signalStatus(signal));
    }
    // SIGINT comes from a terminal: no one needs a load-balancer drain delay there.
    const drainDelay = signal === 'SIGINT' ? 0 : config.shutdown.drainDelay;
    const deadline = Date.now() + drainDelay + config.shutdown.gracePeriod;
    // Nothing may hold the process long past its grace period: not a shutdown hook that
    // does not return, not a stdout nobody reads.
    setTimeout(
      () => {
        logger.error({ event_type: 'shutdown', signal }, 'shutdown did not finish in time: exiting');
        process.exit(1);
      },
      deadline - Date.now() + config.telemetry.shutdownTimeout + SHUTDOWN_HOOKS_MS,
    );
    void sidecar
      .shutdown({ drainDelay })
      .then(() => flushStdout(Math.min(LOG_FLUSH_MS, Math.max(0, deadline - Date.now()))))
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** AGENT_SIDECAR_DEBUG=1: an unexpected failure also prints its stack. */
const DEBUG = process.env.AGENT_SIDECAR_DEBUG === '1';

const program = new Command('agent-sidecar')
  .description('An authenticating reverse proxy and telemetry sidecar for AI agent services.')
  .version(version, '-v, --version')
  // Set before the subcommands are added, which inherit both: Commander's usage errors come
  // to fail() as CommanderErrors instead of printing the help and exiting 1.
  .exitOverride()
  // Its error line and the help it prints after a missing subcommand: fail() says it in one line.
  .configureOutput({ writeErr: () => {}, outputError: () => {} });

withConfigFlags(
  program
    .command('run', { isDefault: true })
    .description('run the sidecar (the default command); with -- <command...>, also start the agent beside it, wired to it')
    .argument('[command...]', 'the agent to start as a child process, after --: agent-sidecar run -- node agent.mjs')
    .option('--agent-port <port>', 'the port the agent listens on (the same as --upstream http://127.0.0.1:<port>)')
    .option('--port-env <name>', "the variable that tells a started agent its port; '' for none", 'PORT'),
).action(run);

withConfigFlags(
  program
    .command('validate')
    .description(
      'check a configuration as run would start it (every file it names read, every key imported, every rule compiled), without binding or connecting anything, then exit',
    ),
).action(async (flags: CommonFlags) => {
  const warnings = await checkSidecar(load(flags));
  for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
  process.stdout.write(`${flags.config ?? 'the defaults'}: configuration is valid\n`);
});

registerRevokeCommand(program);
registerRedactCommand(program, (flags) => loadConfig({ file: flags.config || undefined }));
registerDecryptCommand(program, (flags) => loadConfig({ file: flags.config || undefined }));
registerKeysCommand(program);
registerTokenCommand(program);
registerInjectCommand(program);

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`${version}\n`);
  });

/** `agent-sidecar keys create`: the command the arguments name, for the --help hint. */
function commandPath(argv: readonly string[]): string {
  const names = [program.name()];
  let cmd: Command = program;
  for (const arg of argv) {
    if (arg === '--') break;
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub === undefined) continue;
    names.push(sub.name());
    cmd = sub;
  }
  return names.join(' ');
}

/**
 * Every way the CLI ends in failure, each one line on stderr with its stable code: a usage
 * mistake (Commander's or ours) exits 2, a configuration or input error 2, a listener that
 * cannot bind or an unreachable store 1, anything unexpected 1 with SIDECAR_INTERNAL (and its
 * stack only with AGENT_SIDECAR_DEBUG=1). Never a raw stack trace.
 */
function fail(err: unknown): never {
  if (err instanceof CommanderError) {
    // --help, --version, help: already printed.
    if (err.exitCode === 0) process.exit(0);
    const where = commandPath(process.argv.slice(2));
    const what =
      err.code === 'commander.help'
        ? `${where.slice(program.name().length + 1)} needs a subcommand`
        : err.message
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')
            .replace(/\.$/, '');
    process.stderr.write(`agent-sidecar: ${what}; see ${where} --help [SIDECAR_USAGE_INVALID]\n`);
    process.exit(EXIT_CONFIG);
  }
  if (isSidecarError(err)) {
    process.stderr.write(`agent-sidecar: ${err.message} [${err.code}]\n`);
    process.exit(err.code === 'SIDECAR_LISTEN_FAILED' || err.code === 'SIDECAR_STORE_UNAVAILABLE' ? 1 : EXIT_CONFIG);
  }
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(
    `agent-sidecar: unexpected failure: ${message.split('\n')[0]} [SIDECAR_INTERNAL]${DEBUG ? '' : ' (AGENT_SIDECAR_DEBUG=1 shows where)'}\n`,
  );
  if (DEBUG && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// No top-level await: the single executable runs this module as CommonJS.
program.parseAsync(process.argv).catch(fail);
