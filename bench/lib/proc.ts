import { readdirSync, readFileSync } from 'node:fs';

/**
 * What a server process tree costs, from /proc: CPU seconds (cpu.ts before) and resident
 * memory. A server's tree is the process and its live descendants (nginx's workers are
 * children of its master). The parsers take the text of one file, so they can be tested on
 * fixture text; the tree walkers read the live files.
 */

// USER_HZ: the unit of utime and stime in /proc/<pid>/stat; 100 on every Linux ABI in use.
const TICKS_PER_SECOND = 100;

/** utime + stime in clock ticks, from the text of /proc/<pid>/stat. */
export function parseStatTicks(stat: string): number {
  // Fields after the command (which may hold spaces and parentheses) in parentheses: utime is 14th, stime 15th.
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(stat.slice(0, 80))}`);
  const fields = stat.slice(close + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`no utime/stime in /proc/<pid>/stat: ${JSON.stringify(stat.slice(0, 200))}`);
  return utime + stime;
}

/** A `Name:   value kB` line of /proc/<pid>/status (VmRSS, VmHWM, RssAnon) in bytes; undefined when absent (a zombie, a kernel thread). */
export function parseStatusBytes(status: string, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** The pid and its live descendants, through every thread's children list. */
export function treePids(pid: number): number[] {
  const seen: number[] = [];
  const visit = (p: number) => {
    if (seen.includes(p)) return;
    seen.push(p);
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (children !== '') for (const c of children.split(' ')) visit(Number(c));
      }
    } catch {
      // Gone between listing and reading.
    }
  };
  visit(pid);
  return seen;
}

function readOr<T>(path: string, parse: (text: string) => T, fallback: T): T {
  try {
    return parse(readFileSync(path, 'utf8'));
  } catch {
    return fallback; // gone between listing and reading: it no longer uses CPU or memory
  }
}

/**
 * CPU seconds (user + system) a process and its live descendants have used so far. Read
 * before and after a phase, the difference is what the server spent on it, whatever else the
 * machine was running: a figure that noise on shared CPUs stretches in time but hardly changes in amount.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of treePids(pid)) ticks += readOr(`/proc/${p}/stat`, parseStatTicks, 0);
  return ticks / TICKS_PER_SECOND;
}

/** Bytes resident now (VmRSS), summed over the tree. */
export function treeRssBytes(pid: number): number {
  let bytes = 0;
  for (const p of treePids(pid)) bytes += readOr(`/proc/${p}/status`, (s) => parseStatusBytes(s, 'VmRSS') ?? 0, 0);
  return bytes;
}

/**
 * Anonymous bytes resident now (RssAnon: heaps, stacks, JIT code), summed over the tree. The rest
 * of VmRSS is mostly the pages of the executable and libraries in use: file-backed, shared by
 * every process running the same binary, and reclaimable under memory pressure.
 */
export function treeAnonBytes(pid: number): number {
  let bytes = 0;
  for (const p of treePids(pid)) bytes += readOr(`/proc/${p}/status`, (s) => parseStatusBytes(s, 'RssAnon') ?? 0, 0);
  return bytes;
}

/**
 * Peak resident bytes (VmHWM) summed over the tree: each process's own high-water mark since
 * it started, so for a tree it is an upper bound (the peaks need not coincide).
 */
export function treeHwmBytes(pid: number): number {
  let bytes = 0;
  for (const p of treePids(pid)) bytes += readOr(`/proc/${p}/status`, (s) => parseStatusBytes(s, 'VmHWM') ?? 0, 0);
  return bytes;
}

/** Samples a tree's VmRSS every intervalMs until stopped; keeps the samples (time since start in ms, bytes). */
export class RssSampler {
  readonly samples: Array<{ atMs: number; bytes: number }> = [];
  private readonly timer: NodeJS.Timeout;
  private readonly start = performance.now();
  private readonly pid: number;
  private readonly read: (pid: number) => number;

  /** read: how to measure (a test can pass its own). */
  constructor(pid: number, intervalMs: number, read: (pid: number) => number = treeRssBytes) {
    this.pid = pid;
    this.read = read;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    this.samples.push({ atMs: performance.now() - this.start, bytes: this.read(this.pid) });
  }

  /** Takes a last sample, stops, and returns the largest. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak();
  }

  /** The largest sample so far. */
  peak(): number {
    return Math.max(...this.samples.map((s) => s.bytes));
  }
}

/** The first field of /proc/<pid>/task/<tid>/schedstat: nanoseconds that thread has run. */
export function parseSchedstatNanos(schedstat: string): number {
  const ns = Number(schedstat.slice(0, schedstat.indexOf(' ')));
  if (!Number.isFinite(ns)) throw new Error(`not a schedstat line: ${JSON.stringify(schedstat.slice(0, 80))}`);
  return ns;
}

/**
 * CPU nanoseconds a process tree's live threads have run, from each thread's schedstat: the
 * same time as utime + stime, without their 10 ms ticks, so that one short call can be
 * charged. Threads that exited are missed (a Node server's threads live as long as it does).
 * Falls back to utime + stime where schedstat is not kept (it reads 0).
 */
export function treeCpuNanos(pid: number): number {
  let ns = 0;
  for (const p of treePids(pid)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) ns += readOr(`/proc/${p}/task/${tid}/schedstat`, parseSchedstatNanos, 0);
  }
  return ns > 0 ? ns : treeCpuSeconds(pid) * 1e9;
}
