import type { Redis } from 'ioredis';

/** Running spend totals by key, each kept until its window is over. */
export interface BudgetStore {
  /** The totals of `keys` (0 for a key never spent on); rejects when the store cannot answer. */
  get(keys: readonly string[]): Promise<number[]>;
  /** Adds `amount` to each key, kept for `ttlMs` more; the new totals. */
  add(entries: ReadonlyArray<{ key: string; ttlMs: number }>, amount: number): Promise<number[]>;
}

/** Key names under stores.redis.keyPrefix (ioredis applies the prefix). */
export const budgetKey = (key: string) => `budget:${key}`;

/**
 * Spend in Redis, shared by every sidecar of the agent: INCRBYFLOAT is atomic, so two
 * sidecars adding at once both count, and exactly one of them sees a threshold crossed.
 */
export function createRedisBudgetStore(redis: Redis): BudgetStore {
  return {
    async get(keys) {
      if (keys.length === 0) return [];
      const values = await redis.mget(...keys.map(budgetKey));
      return values.map((v) => (v === null ? 0 : Number(v)));
    },
    async add(entries, amount) {
      const tx = redis.multi();
      for (const e of entries) {
        tx.incrbyfloat(budgetKey(e.key), amount);
        tx.pexpire(budgetKey(e.key), e.ttlMs);
      }
      const results = await tx.exec();
      if (results === null) throw new Error('the budget transaction was discarded');
      return entries.map((_, i) => {
        const [err, value] = results[i * 2]!;
        if (err) throw err;
        return Number(value);
      });
    },
  };
}

/** Spend in this process (no stores.redis): each replica counts its own. Windows past their end are dropped. */
export function createMemoryBudgetStore(now: () => number = Date.now): BudgetStore {
  const totals = new Map<string, { value: number; until: number }>();
  const live = (key: string) => {
    const e = totals.get(key);
    if (e !== undefined && e.until <= now()) {
      totals.delete(key);
      return undefined;
    }
    return e;
  };
  return {
    async get(keys) {
      return keys.map((k) => live(k)?.value ?? 0);
    },
    async add(entries, amount) {
      // Past windows are never read again: drop them now and then.
      if (totals.size > 1024) for (const key of [...totals.keys()]) live(key);
      return entries.map(({ key, ttlMs }) => {
        const e = live(key) ?? { value: 0, until: 0 };
        e.value += amount;
        e.until = now() + ttlMs;
        totals.set(key, e);
        return e.value;
      });
    },
  };
}
