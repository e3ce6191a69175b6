import os from 'node:os';
import { which } from './tools.ts';
import { runTool } from './procs.ts';

export interface RunMeta {
  node: string;
  nginx: string;
  wrk: string;
  vegeta: string;
  /** agentgateway's version line, when its binary is there. */
  agentgateway?: string | undefined;
  cpuModel: string;
  cpus: number;
  kernel: string;
  loadAverage: number[];
  gitCommit: string;
}

async function firstLine(command: string, args: readonly string[], match?: RegExp): Promise<string> {
  try {
    const r = await runTool(`${command} ${args.join(' ')}`, command, args, 10_000);
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim());
    return (match ? lines.find((l) => match.test(l)) : lines.find((l) => l !== '')) ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** What the figures depend on besides the code: tool versions and the machine. */
export async function collectMeta(tools: { nginx: string; wrk: string; vegeta: string; agentgateway?: string | undefined }): Promise<RunMeta> {
  const go = which('go');
  const [nginx, wrk, vegetaMod, commit, dirty, agentgateway] = await Promise.all([
    firstLine(tools.nginx, ['-v'], /nginx version/),
    firstLine(tools.wrk, ['-v'], /^wrk /),
    go ? firstLine(go, ['version', '-m', tools.vegeta], /^mod\s/) : Promise.resolve('unknown'),
    firstLine('git', ['rev-parse', '--short', 'HEAD']),
    firstLine('git', ['status', '--porcelain', '--untracked-files=no']),
    tools.agentgateway === undefined ? Promise.resolve(undefined) : firstLine(tools.agentgateway, ['-V']),
  ]);
  return {
    node: process.version,
    nginx: nginx.replace(/^nginx version:\s*/, ''),
    wrk: wrk.split(/\s+Copyright/)[0] ?? wrk,
    vegeta: vegetaMod.split(/\s+/)[2] ?? vegetaMod,
    ...(agentgateway === undefined ? {} : { agentgateway }),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    loadAverage: os.loadavg().map((v) => Math.round(v * 100) / 100),
    gitCommit: dirty === 'unknown' || dirty === '' ? commit : `${commit} (uncommitted changes)`,
  };
}
