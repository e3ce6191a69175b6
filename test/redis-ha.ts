import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './helpers.ts';
import { ping } from './redis-server.ts';

// Real Redis topologies on loopback for the stores' tests: a primary with a replica behind
// three Sentinels, and a three-primary Redis Cluster. redis-server and redis-cli from the
// distribution's packages (.ci/run installs them).

const SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const CLI = process.env.REDIS_CLI_BIN ?? '/usr/bin/redis-cli';

/** redis-cli's answer to a command (no client library of ours); empty when the server does not answer. */
export function cli(port: number, ...args: string[]): string {
  const r = spawnSync(CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 5_000 });
  return r.status === 0 ? r.stdout : '';
}

interface Proc {
  port: number;
  child: ChildProcess;
  kill(): Promise<void>;
}

async function launch(args: string[], port: number, output: string[]): Promise<Proc> {
  const child = spawn(SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server ${args.join(' ')} did not start:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    child,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const common = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'];

export interface SentinelSet {
  masterName: string;
  /** host:port of each Sentinel. */
  sentinels: string[];
  primary: Proc;
  replica: Proc;
  /** The port the Sentinels name as primary now. */
  currentPrimary(): number | undefined;
  close(): Promise<void>;
}

/**
 * A primary, one replica, and three Sentinels (quorum 2) that fail over one second after
 * the primary stops answering.
 */
export async function startSentinelSet(masterName = 'agents'): Promise<SentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-sentinel-'));
  const output: string[] = [];
  const procs: Proc[] = [];
  const pPort = await freePort();
  const primary = await launch(common(pPort), pPort, output);
  procs.push(primary);
  const rPort = await freePort();
  const replica = await launch([...common(rPort), '--replicaof', '127.0.0.1', String(pPort)], rPort, output);
  procs.push(replica);
  // The replica has the primary's data before anything relies on it.
  const deadline = Date.now() + 10_000;
  while (!cli(rPort, 'INFO', 'replication').includes('master_link_status:up')) {
    if (Date.now() > deadline) throw new Error(`the replica did not sync:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const sentinels: string[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const file = join(dir, `sentinel-${i}.conf`);
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `sentinel monitor ${masterName} 127.0.0.1 ${pPort} 2`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'),
    );
    procs.push(await launch([file, '--sentinel'], port, output));
    sentinels.push(`127.0.0.1:${port}`);
  }
  const sentinelPort = Number(sentinels[0]!.split(':')[1]);
  return {
    masterName,
    sentinels,
    primary,
    replica,
    currentPrimary() {
      const [, port] = cli(sentinelPort, 'SENTINEL', 'get-master-addr-by-name', masterName).trim().split('\n');
      return port === undefined ? undefined : Number(port);
    },
    async close() {
      for (const p of procs.reverse()) await p.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  /** redis://127.0.0.1:<port> of each primary. */
  nodes: string[];
  close(): Promise<void>;
}

/** Three primaries, no replicas, slots spread by redis-cli --cluster create. */
export async function startCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'));
  const output: string[] = [];
  const procs: Proc[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    procs.push(
      await launch(
        [...common(port), '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000'],
        port,
        output,
      ),
    );
  }
  const created = spawnSync(CLI, ['--cluster', 'create', ...procs.map((p) => `127.0.0.1:${p.port}`), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}${created.stderr}`);
  const deadline = Date.now() + 15_000;
  for (const p of procs) {
    while (!cli(p.port, 'CLUSTER', 'INFO').includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error(`the cluster did not become ok:\n${output.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    nodes: procs.map((p) => `redis://127.0.0.1:${p.port}`),
    async close() {
      for (const p of procs) await p.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
