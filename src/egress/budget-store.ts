import type { StoreClient } from '../stores/index.ts';

/** One budget's running figures in its window, in USD. */
export interface BudgetTotals {
  /** Settled: what finished calls cost. */
  spent: number;
  /** Held for calls under way: each one's estimate until it settles. */
  reserved: number;
}

/** One budget a call counts against: its store key, how long the key lives, and its hard limit. */
export interface BudgetEntry {
  key: string;
  ttlMs: number;
  limitUsd: number;
}

export type ReserveResult = { ok: true; totals: BudgetTotals[] } | { ok: false; refused: number; totals: BudgetTotals[] };

/**
 * Spend per budget, kept until its window is over. A call reserves its estimate before it is
 * sent and settles its cost when it ends, each in one atomic step across all its budgets, so
 * that concurrent calls, on any number of sidecars sharing the store, see each other's.
 */
export interface BudgetStore {
  /**
   * Refuses (the first entry whose spent + reserved has reached its limit) or reserves
   * `amount` on every entry, atomically. Rejects when the store cannot answer.
   */
  reserve(entries: readonly BudgetEntry[], amount: number): Promise<ReserveResult>;
  /** Releases `reserved` and adds `cost` on every entry, atomically; the new totals. */
  settle(entries: readonly BudgetEntry[], reserved: number, cost: number): Promise<BudgetTotals[]>;
}

/**
 * Key names under stores.redis.keyPrefix (ioredis applies the prefix). The agent type is a
 * hash tag: one call's budgets (all of one agent) live in one Redis Cluster slot, which a
 * script touching several keys needs.
 */
export const budgetKey = (agentType: string, rest: string) => `budget:{${agentType}}:${rest}`;

/*
 * Each budget is a hash { spent, reserved } (HINCRBYFLOAT: decimal strings, exact enough for
 * USD). Lua numbers returned to Redis become integers, so totals go back as strings.
 * RESERVE: ARGV[1] the amount, then (limit, ttl ms) per key.
 */
const RESERVE_LUA = `
local amount = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  local spent, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  out[2 * i - 1], out[2 * i] = tostring(spent), tostring(reserved)
  if spent + reserved >= tonumber(ARGV[2 * i]) then
    table.insert(out, 1, i)
    return out
  end
end
for i, key in ipairs(KEYS) do
  if amount > 0 then out[2 * i] = redis.call('HINCRBYFLOAT', key, 'reserved', ARGV[1]) end
  redis.call('PEXPIRE', key, ARGV[2 * i + 1])
end
table.insert(out, 1, 0)
return out
`;

/* SETTLE: ARGV[1] the reservation to release, ARGV[2] the cost, then a ttl ms per key. */
const SETTLE_LUA = `
local out = {}
for i, key in ipairs(KEYS) do
  local reserved = tonumber(redis.call('HINCRBYFLOAT', key, 'reserved', '-' .. ARGV[1]))
  if reserved < 1e-9 then
    reserved = 0
    redis.call('HSET', key, 'reserved', '0')
  end
  local spent = redis.call('HINCRBYFLOAT', key, 'spent', ARGV[2])
  redis.call('PEXPIRE', key, ARGV[i + 2])
  out[2 * i - 1], out[2 * i] = spent, tostring(reserved)
end
return out
`;

type BudgetRedis = StoreClient & {
  budgetReserve(n: number, ...args: Array<string | number>): Promise<Array<string | number>>;
  budgetSettle(n: number, ...args: Array<string | number>): Promise<string[]>;
};

const totalsOf = (flat: ReadonlyArray<string | number>): BudgetTotals[] => {
  const out: BudgetTotals[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ spent: Number(flat[i]), reserved: Number(flat[i + 1]) });
  return out;
};

/** A decimal string without exponent (HINCRBYFLOAT refuses 1e-7). */
const decimal = (usd: number): string => (usd > 0 ? usd.toFixed(12) : '0');

/** Budgets in Redis (standalone, Sentinel or Cluster), shared by every sidecar of the agent: one script per reserve and per settle. */
export function createRedisBudgetStore(redis: StoreClient): BudgetStore {
  if (!('budgetReserve' in redis)) {
    // numberOfKeys is given per call (a call counts against one to a few budgets).
    redis.defineCommand('budgetReserve', { lua: RESERVE_LUA });
    redis.defineCommand('budgetSettle', { lua: SETTLE_LUA });
  }
  const r = redis as BudgetRedis;
  return {
    async reserve(entries, amount) {
      if (entries.length === 0) return { ok: true, totals: [] };
      const args = entries.flatMap((e) => [String(e.limitUsd), String(Math.ceil(e.ttlMs))]);
      const [refused, ...flat] = await r.budgetReserve(entries.length, ...entries.map((e) => e.key), decimal(amount), ...args);
      const totals = totalsOf(flat);
      return Number(refused) === 0 ? { ok: true, totals } : { ok: false, refused: Number(refused) - 1, totals };
    },
    async settle(entries, reserved, cost) {
      if (entries.length === 0) return [];
      const flat = await r.budgetSettle(
        entries.length,
        ...entries.map((e) => e.key),
        decimal(reserved),
        decimal(cost),
        ...entries.map((e) => String(Math.ceil(e.ttlMs))),
      );
      return totalsOf(flat);
    },
  };
}

/** Budgets in this process (no stores.redis): each replica counts its own. Windows past their end are dropped. */
export function createMemoryBudgetStore(now: () => number = Date.now): BudgetStore {
  const totals = new Map<string, BudgetTotals & { until: number }>();
  const live = (key: string) => {
    const e = totals.get(key);
    if (e !== undefined && e.until <= now()) {
      totals.delete(key);
      return undefined;
    }
    return e;
  };
  const entryOf = (key: string, ttlMs: number) => {
    const e = live(key) ?? { spent: 0, reserved: 0, until: 0 };
    e.until = now() + ttlMs;
    totals.set(key, e);
    return e;
  };
  const copy = (e: BudgetTotals): BudgetTotals => ({ spent: e.spent, reserved: e.reserved });
  return {
    async reserve(entries, amount) {
      // Past windows are never read again: drop them now and then.
      if (totals.size > 1024) for (const key of [...totals.keys()]) live(key);
      const current = entries.map((e) => live(e.key) ?? { spent: 0, reserved: 0 });
      const refused = entries.findIndex((e, i) => current[i]!.spent + current[i]!.reserved >= e.limitUsd);
      if (refused >= 0) return { ok: false, refused, totals: current.slice(0, refused + 1).map(copy) };
      return {
        ok: true,
        totals: entries.map(({ key, ttlMs }) => {
          const e = entryOf(key, ttlMs);
          e.reserved += amount;
          return copy(e);
        }),
      };
    },
    async settle(entries, reserved, cost) {
      return entries.map(({ key, ttlMs }) => {
        const e = entryOf(key, ttlMs);
        e.reserved = Math.max(0, e.reserved - reserved);
        if (e.reserved < 1e-9) e.reserved = 0;
        e.spent += cost;
        return copy(e);
      });
    },
  };
}
