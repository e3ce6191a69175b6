#!/usr/bin/env node
import { Command, Option } from 'commander';
import { checkConfigFiles } from '../config/check-files.ts';
import { loadConfig, type ConfigOverrides } from '../config/index.ts';
import { isSidecarError, SidecarError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { assembleSidecar } from '../sidecar.ts';
import { version } from '../version.ts';
import { registerDecryptCommand } from './decrypt.ts';
import { registerInjectCommand } from './inject.ts';
import { registerKeysCommand } from './keys.ts';
import { registerRedactCommand } from './redact.ts';
import { registerRevokeCommand } from './revoke.ts';
import { runAgent } from './run-agent.ts';
import { registerTokenCommand } from './token.ts';

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
  if (flags.agentPort !== undefined) {
    if (!/^\d{1,5}$/.test(flags.agentPort) || Number(flags.agentPort) < 1 || Number(flags.agentPort) > 65535) {
      throw new SidecarError('SIDECAR_USAGE_INVALID', { message: `--agent-port ${flags.agentPort}: expected a port number from 1 to 65535` });
    }
    if (flags.upstream !== undefined) throw new SidecarError('SIDECAR_USAGE_INVALID', { message: '--agent-port and --upstream both name the agent; give one' });
    flags.upstream = `http://127.0.0.1:${flags.agentPort}`;
  }
  const config = load(flags);
  const logger = createLogger(config.log.level);
  const sidecar = await assembleSidecar(config, logger);
  const { listeners } = await sidecar.start();
  if (command.length > 0) {
    const status = await runAgent(command, sidecar, { config, egressAddress: listeners.egress, portEnv: flags.portEnv, env: process.env, logger });
    process.exit(status);
  }
  process.on('SIGHUP', () => {
    logger.info({ event_type: 'reload', signal: 'SIGHUP' }, 'reloading policy, API keys and protection keys');
    void sidecar.access.reload();
    void sidecar.protection.reload();
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ event_type: 'shutdown', signal }, 'second signal: exiting at once');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    // SIGINT comes from a terminal: no one needs a load-balancer drain delay there.
    void sidecar.shutdown(signal === 'SIGINT' ? { drainDelay: 0 } : {}).then(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

const program = new Command('agent-sidecar')
  .description('An authenticating reverse proxy and telemetry sidecar for AI agent services.')
  .version(version, '-v, --version')
  .showHelpAfterError();

withConfigFlags(
  program
    .command('run', { isDefault: true })
    .description('run the sidecar (the default command); with -- <command...>, also start the agent beside it, wired to it')
    .argument('[command...]', 'the agent to start as a child process, after --: agent-sidecar run -- node agent.mjs')
    .option('--agent-port <port>', 'the port the agent listens on (the same as --upstream http://127.0.0.1:<port>)')
    .option('--port-env <name>', "the variable that tells a started agent its port; '' for none", 'PORT'),
).action(run);

withConfigFlags(
  program.command('validate').description('check a configuration and the files it names (policy, API keys, TLS) as run would load them, then exit'),
).action(async (flags: CommonFlags) => {
  const warnings = await checkConfigFiles(load(flags));
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

// No top-level await: the single executable runs this module as CommonJS.
program.parseAsync(process.argv).catch((err: unknown) => {
  if (isSidecarError(err)) {
    process.stderr.write(`agent-sidecar: ${err.message} [${err.code}]\n`);
    process.exit(err.code === 'SIDECAR_LISTEN_FAILED' || err.code === 'SIDECAR_STORE_UNAVAILABLE' ? 1 : EXIT_CONFIG);
  }
  throw err;
});
