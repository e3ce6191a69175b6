import { describe, expect, it } from 'vitest';
import { parseStatTicks, parseStatusBytes, RssSampler, treeAnonBytes, treeCpuSeconds, treePids, treeRssBytes } from '../bench/lib/proc.ts';

// /proc/<pid>/stat of a process whose command holds a space and a parenthesis: utime 1234, stime 567.
const STAT =
  '4242 (node (main) x) S 1 4242 4242 0 -1 4194560 29385 0 0 0 1234 567 0 0 20 0 11 0 123456 1234567890 45678 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';

const STATUS = `Name:\tnode
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
VmPeak:\t 1234567 kB
VmSize:\t 1200000 kB
VmHWM:\t   98765 kB
VmRSS:\t   65432 kB
RssAnon:\t   40000 kB
Threads:\t11
`;

describe('bench /proc parsers', () => {
  it('reads utime + stime after the command, whatever the command holds', () => {
    expect(parseStatTicks(STAT)).toBe(1234 + 567);
  });

  it('refuses text that is not a stat line', () => {
    expect(() => parseStatTicks('no parentheses here')).toThrow(/not a \/proc\/<pid>\/stat line/);
    expect(() => parseStatTicks('1 (x) S 1')).toThrow(/no utime\/stime/);
  });

  it('reads VmRSS and VmHWM in bytes, and nothing from a status without them', () => {
    expect(parseStatusBytes(STATUS, 'VmRSS')).toBe(65432 * 1024);
    expect(parseStatusBytes(STATUS, 'VmHWM')).toBe(98765 * 1024);
    expect(parseStatusBytes(STATUS, 'RssAnon')).toBe(40000 * 1024);
    // A zombie's status has no Vm* lines.
    expect(parseStatusBytes('Name:\tnginx\nState:\tZ (zombie)\n', 'VmRSS')).toBeUndefined();
  });

  it('measures this process from the live /proc', () => {
    const pids = treePids(process.pid);
    expect(pids[0]).toBe(process.pid);
    expect(treeRssBytes(process.pid)).toBeGreaterThan(1024 * 1024);
    expect(treeAnonBytes(process.pid)).toBeGreaterThan(1024 * 1024);
    expect(treeAnonBytes(process.pid)).toBeLessThan(treeRssBytes(process.pid));
    expect(treeCpuSeconds(process.pid)).toBeGreaterThan(0);
  });

  it('reads nothing for a process that is gone', () => {
    // pid_max is at most 2^22: this pid cannot exist.
    expect(treeRssBytes(2 ** 23)).toBe(0);
    expect(treeAnonBytes(2 ** 23)).toBe(0);
    expect(treeCpuSeconds(2 ** 23)).toBe(0);
  });
});

describe('RssSampler', () => {
  it('samples at start and stop and returns the largest', () => {
    const readings = [10, 30, 20];
    const sampler = new RssSampler(1, 60_000, () => readings.shift() ?? 0);
    expect(sampler.stop()).toBe(30);
    expect(sampler.samples.map((s) => s.bytes)).toEqual([10, 30]);
    expect(sampler.samples[1]!.atMs).toBeGreaterThanOrEqual(sampler.samples[0]!.atMs);
  });
});
