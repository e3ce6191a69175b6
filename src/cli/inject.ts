import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { createTwoFilesPatch } from 'diff';
import { SidecarError } from '../errors/index.ts';
import { FILE_LIMITS, readStreamCapped, readTextCappedAsync } from '../files/index.ts';
import { writeFileAtomic } from '../files/index.ts';
import { defaultImage, formatChange, injectCompose, injectManifests, resolveSettings, type InjectFlags, type Result } from '../inject/index.ts';
import { usageError } from './usage.ts';

interface Flags extends InjectFlags {
  filename?: string;
  output?: string;
  compose?: string;
  service?: string;
  uninject?: boolean;
  diff?: boolean;
}

async function readInput(file: string | undefined): Promise<{ name: string; text: string }> {
  if (file === undefined || file === '-') {
    if (process.stdin.isTTY) throw usageError('give the manifests with -f FILE, or pipe them into stdin');
    try {
      return { name: 'stdin', text: await readStreamCapped(process.stdin, FILE_LIMITS.inject) };
    } catch (cause) {
      throw new SidecarError('SIDECAR_INJECT_UNREADABLE', { message: `cannot read stdin: ${(cause as Error).message}`, cause });
    }
  }
  try {
    return { name: file, text: await readTextCappedAsync(file, FILE_LIMITS.inject) };
  } catch (cause) {
    throw new SidecarError('SIDECAR_INJECT_UNREADABLE', { message: `cannot read ${file}: ${(cause as Error).message}`, cause });
  }
}

/** How the compose file names the configuration file: relative to itself, as compose resolves it. */
function composeMount(composeFile: string, config: string): string {
  const from = composeFile === 'stdin' ? process.cwd() : dirname(resolve(composeFile));
  const rel = relative(from, resolve(config));
  if (isAbsolute(rel)) return rel;
  // A bare name would be a named volume.
  return rel.startsWith('.') ? rel : `./${rel}`;
}

async function inject(flags: Flags): Promise<void> {
  if (flags.compose !== undefined && flags.filename !== undefined)
    throw usageError('give either -f (Kubernetes manifests) or --compose (a compose file), not both');
  if (flags.service !== undefined && flags.compose === undefined) throw usageError('--service goes with --compose');
  if (flags.compose !== undefined && flags.service === undefined && !flags.uninject)
    throw usageError('inject --compose needs --service NAME, the agent service');
  if (flags.compose !== undefined && flags.credentialSecret !== undefined)
    throw usageError('--credential-secret names a Kubernetes Secret; in compose each key is a secret of its own: name them with --credential-keys');
  const settings = resolveSettings(flags);
  const input = await readInput(flags.compose ?? flags.filename);
  let result: Result;
  if (flags.compose !== undefined) {
    const configMount = settings.configFile === undefined ? undefined : composeMount(input.name, settings.configFile.path);
    result = injectCompose(input.text, settings, { source: input.name, service: flags.service, uninject: flags.uninject === true, configMount });
  } else {
    result = injectManifests(input.text, settings, { source: input.name, uninject: flags.uninject === true });
  }
  const out = flags.diff ? createTwoFilesPatch(input.name, input.name, input.text, result.text, undefined, undefined, { context: 3 }) : result.text;
  if (flags.output !== undefined) {
    try {
      await writeFileAtomic(flags.output, out);
    } catch (cause) {
      throw new SidecarError('SIDECAR_INJECT_UNWRITABLE', { message: `cannot write ${flags.output}: ${(cause as Error).message}`, cause });
    }
  } else {
    process.stdout.write(out);
  }
  const report = result.text === input.text ? ['no change'] : result.changes.map(formatChange);
  process.stderr.write(report.map((line) => `inject: ${line}\n`).join(''));
}

/**
 * `agent-sidecar inject`: the sidecar into Kubernetes manifests or a compose file, as a
 * filter (stdin to stdout) that reports each change on stderr. Nothing is written when the
 * input has an error.
 */
export function registerInjectCommand(program: Command): void {
  program
    .command('inject')
    .description('add the sidecar to Kubernetes workloads or a compose service; prints the result and reports each change on stderr')
    .option('-f, --filename <file>', 'Kubernetes manifests (one or more YAML documents); default or -: stdin')
    .option('-o, --output <file>', 'write the result (or the diff) here, atomically, instead of stdout')
    .option('--compose <file>', 'a compose file instead (- for stdin); with --service')
    .option('--service <name>', 'the compose service of the agent')
    .option('--uninject', 'take out what inject added, exactly')
    .option('--diff', 'print a unified diff instead of the result')
    .option('--native-sidecar', 'run the sidecar as a native sidecar: an init container with restartPolicy: Always (Kubernetes 1.29+)')
    .option('--image <image>', `the sidecar image (default ${defaultImage()}); annotation agent-sidecar.io/image overrides it per workload`)
    .option('--configmap-from <file>', 'the sidecar configuration file: validated, then emitted as a ConfigMap (compose: mounted into the sidecar)')
    .option(
      '--configmap-name <name>',
      'the ConfigMap the sidecar reads its configuration from (default agent-sidecar); annotation agent-sidecar.io/config overrides it',
    )
    .option('--upstream-port <port>', "the agent's port (number or container port name) where the annotation does not say; default: its first port")
    .option('--ingress-port <port>', "the sidecar's ingress port (default: listen.address of the configuration)")
    .option('--egress-port <port>', "the sidecar's LLM egress port")
    .option('--admin-port <port>', "the sidecar's admin port for probes (default: admin.address of the configuration)")
    .option('--otel-endpoint <url>', 'OTLP endpoint for the agent and the sidecar (default: telemetry.endpoint of the configuration, else none)')
    .option(
      '--credential-secret <name>',
      'the Secret with the provider keys: mounted in the sidecar only, taken away from the agent, which gets a placeholder; annotation agent-sidecar.io/credential-secret overrides it',
    )
    .option(
      '--credential-keys <keys>',
      'which key holds which provider key (default anthropic=anthropic-api-key,openai=openai-api-key); compose: the secrets the sidecar holds; annotation or label agent-sidecar.io/credential-keys overrides it',
    )
    .action(inject);
}
