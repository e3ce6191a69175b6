// What defining a String subclass does to the rest of the process: ioredis does (its RESP3
// VerbatimString), and after that V8 runs String.prototype.charCodeAt loops slower. The same
// work is timed in two child processes, one that loaded ioredis first; the ratio is the cost a
// sidecar with Redis configured pays, and why stores/redis.ts loads ioredis only then and why
// the hot text scanners (protect/detect/types.ts, the OTLP writer) avoid charCodeAt.
// npm run bench:micro:strings
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROUNDS = 5;
const N = 400_000;
const TEXT = 'GET /api/v1/agents/4bf92f3577b34da6 200 http.request.method user_agent.original curl/8.5.0';

function charCodeLoop(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) n += s.charCodeAt(i) < 0x80 ? 1 : 2;
  return n;
}

function indexLoop(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) n += s[i]! < '\x80' ? 1 : 2;
  return n;
}

/** Best of ROUNDS, ns per string. */
function time(fn: (s: string) => number): number {
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r <= ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += fn(TEXT);
    const ns = Number(process.hrtime.bigint() - start) / N;
    if (r > 0) best = Math.min(best, ns);
  }
  if (sink === 0) throw new Error('unreachable');
  return best;
}

const mode = process.argv[2];
if (mode === 'plain' || mode === 'ioredis') {
  if (mode === 'ioredis') await import('ioredis');
  process.stdout.write(JSON.stringify({ charCodeAt: time(charCodeLoop), index: time(indexLoop) }));
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (m: string) => JSON.parse(execFileSync(process.execPath, [self, m], { encoding: 'utf8' })) as { charCodeAt: number; index: number };
  const plain = run('plain');
  const loaded = run('ioredis');
  const f = (n: number) => `${n.toFixed(1).padStart(7)} ns`;
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  process.stdout.write(
    [
      `a ${TEXT.length}-character string scanned, best of ${ROUNDS} rounds of ${N.toLocaleString('en')} (each in its own process)`,
      `                 without ioredis   ioredis loaded   loaded / without`,
      `  charCodeAt     ${f(plain.charCodeAt)}        ${f(loaded.charCodeAt)}       ${x(loaded.charCodeAt, plain.charCodeAt)}`,
      `  s[i]           ${f(plain.index)}        ${f(loaded.index)}       ${x(loaded.index, plain.index)}`,
      '',
    ].join('\n'),
  );
}
