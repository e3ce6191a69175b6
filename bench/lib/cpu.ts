import { readdirSync, readFileSync } from 'node:fs';

// USER_HZ: the unit of utime and stime in /proc/<pid>/stat; 100 on every Linux ABI in use.
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) a process and its live descendants have used so far (nginx's
 * workers are children of its master), from /proc. Read before and after a phase, the
 * difference is what the server spent on it, whatever else the machine was running: a
 * figure that noise on shared CPUs stretches in time but hardly changes in amount.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  const seen = new Set<number>();
  const visit = (p: number) => {
    if (seen.has(p)) return;
    seen.add(p);
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command (which may hold spaces) in parentheses: utime is 14th, stime 15th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (children !== '') for (const c of children.split(' ')) visit(Number(c));
      }
    } catch {
      // Gone between listing and reading: it no longer uses CPU.
    }
  };
  visit(pid);
  return ticks / TICKS_PER_SECOND;
}
