import type { EgressConfig } from '../config/index.ts';
import { SidecarError } from '../errors/index.ts';
import { componentLogger, type Logger } from '../log/index.ts';
import { createLogThrottle, createStoreFailureHandler } from '../stores/index.ts';
import { budgetKey, type BudgetStore, type BudgetTotals, type ReserveResult } from './budget-store.ts';

type Limit = EgressConfig['budgets']['limits'][number];

/** Where one budget stands, for llm_budget_utilization_ratio{agent_type,scope,window}. */
export interface BudgetStatus {
  /** `all`, or `model:<selector>` for a limit on one model or model prefix. */
  scope: string;
  window: Limit['window'];
  limitUsd: number;
  spentUsd: number;
}

export interface BudgetHooks {
  /** Every time a total is read or changed. */
  status(s: BudgetStatus): void;
  /** A call refused for a spent budget. */
  refused(s: BudgetStatus): void;
  /** A total crossed the soft share of its limit (once per window, across every sidecar sharing the store). */
  soft(s: BudgetStatus): void;
}

export interface Budgets {
  readonly limits: number;
  /**
   * Reserves `estimateUsd` (what the call may cost at most, as far as its request says) on every
   * budget that applies to `model`, before anything is sent to the provider; throws
   * SIDECAR_BUDGET_EXCEEDED (429, Retry-After until the window ends) when one has reached its
   * limit with what is spent and reserved, and with the store down SIDECAR_STORE_UNAVAILABLE
   * under failMode closed. The reservation is settled when the call ends.
   */
  reserve(model: string | undefined, estimateUsd: number): Promise<Reservation>;
}

/** A call's hold on its budgets. */
export interface Reservation {
  /** Releases the estimate and adds what the call cost (0 when it cost nothing, or is unpriced); only the first call counts, never throws. */
  settle(costUsd: number): void;
}

const NOTHING: Reservation = { settle() {} };

export interface BudgetOptions {
  config: EgressConfig['budgets'];
  agentType: string;
  store: BudgetStore;
  logger: Logger;
  hooks: BudgetHooks;
  now?: () => number;
}

const MARGIN_MS = 60 * 60 * 1000;

/**
 * Spend limits per agent (telemetry.agentType), per model and per calendar window (UTC), in
 * Redis or memory. A call reserves its estimate before it is sent and settles its cost when it
 * ends, so concurrent calls count against each other: a limit is passed by at most one call's
 * estimate (the last one let in while spent + reserved was under it), or by what a call costs
 * beyond its estimate.
 */
export function createBudgets(o: BudgetOptions): Budgets {
  const { config, agentType, store, hooks } = o;
  const now = o.now ?? Date.now;
  const log = componentLogger(o.logger, 'agent-sidecar.budget');
  const failure = createStoreFailureHandler({ store: 'budget', openMeans: 'LLM calls pass unbudgeted', failMode: config.failMode, logger: o.logger });
  const settleErrors = createLogThrottle(log);
  const limits = config.limits.map((l) => ({ ...l, scope: l.model === undefined ? 'all' : `model:${l.model}`, match: matcher(l.model) }));

  function applicable(model: string | undefined) {
    const t = now();
    return limits
      .filter((l) => l.match(model))
      .map((l) => {
        const w = windowOf(l.window, t);
        return { l, key: budgetKey(agentType, `${l.scope}:${l.window}:${w.id}`), endsAt: w.endsAt, ttlMs: w.endsAt - t + MARGIN_MS, limitUsd: l.usd };
      });
  }
  type Applicable = ReturnType<typeof applicable>[number];
  const statusOf = (l: (typeof limits)[number], spentUsd: number): BudgetStatus => ({ scope: l.scope, window: l.window, limitUsd: l.usd, spentUsd });

  async function settle(list: Applicable[], reserved: number, cost: number): Promise<void> {
    let totals: BudgetTotals[];
    try {
      totals = await store.settle(list, reserved, cost);
    } catch (err) {
      settleErrors.warn(
        { event_type: 'budget_store_failed', err: { message: (err as Error).message }, usd: cost, reserved_usd: reserved },
        'budget store unreachable: the cost of a call was not counted, its reservation not released',
      );
      return;
    }
    for (const [i, a] of list.entries()) {
      const s = statusOf(a.l, totals[i]!.spent);
      hooks.status(s);
      if (!(cost > 0)) continue;
      const before = s.spentUsd - cost;
      const soft = (a.l.soft ?? config.soft) * s.limitUsd;
      const fields = {
        event_type: 'llm_budget',
        agent_type: agentType,
        scope: s.scope,
        window: s.window,
        limit_usd: s.limitUsd,
        spent_usd: round(s.spentUsd),
      };
      if (before < soft && s.spentUsd >= soft) {
        hooks.soft(s);
        log.warn({ ...fields, threshold: 'soft' }, `LLM budget ${s.scope}/${s.window} at ${Math.round((s.spentUsd / s.limitUsd) * 100)}% of ${s.limitUsd} USD`);
      }
      if (before < s.limitUsd && s.spentUsd >= s.limitUsd) {
        log.warn({ ...fields, threshold: 'hard' }, `LLM budget ${s.scope}/${s.window} spent: further calls are refused until the window ends`);
      }
    }
  }

  return {
    limits: limits.length,
    async reserve(model, estimateUsd) {
      const list = applicable(model);
      if (list.length === 0) return NOTHING;
      const amount = estimateUsd > 0 && Number.isFinite(estimateUsd) ? estimateUsd : 0;
      let result: ReserveResult;
      try {
        result = await store.reserve(list, amount);
      } catch (err) {
        failure.failed(err);
        return NOTHING;
      }
      for (const [i, t] of result.totals.entries()) hooks.status(statusOf(list[i]!.l, t.spent));
      if (!result.ok) {
        const a = list[result.refused]!;
        const t = result.totals[result.refused]!;
        const s = statusOf(a.l, t.spent);
        hooks.refused(s);
        throw new SidecarError('SIDECAR_BUDGET_EXCEEDED', {
          // SDKs retry a 429 unless told not to; this one does not clear before the window ends,
          // unless calls under way settle below their estimates.
          headers: { 'retry-after': String(Math.max(1, Math.ceil((a.endsAt - now()) / 1000))), 'x-should-retry': 'false' },
          details: {
            budget: {
              agent_type: agentType,
              scope: s.scope,
              window: s.window,
              limit_usd: s.limitUsd,
              spent_usd: round(t.spent),
              reserved_usd: round(t.reserved),
            },
          },
        });
      }
      let settled = false;
      return {
        settle(costUsd) {
          if (settled) return;
          settled = true;
          void settle(list, amount, costUsd > 0 && Number.isFinite(costUsd) ? costUsd : 0);
        },
      };
    },
  };
}

function matcher(selector: string | undefined): (model: string | undefined) => boolean {
  if (selector === undefined) return () => true;
  if (selector.endsWith('*')) {
    const prefix = selector.slice(0, -1);
    return (m) => m !== undefined && m.startsWith(prefix);
  }
  return (m) => m === selector;
}

/** The calendar window (UTC) that `t` falls in: its id and when it ends. */
export function windowOf(window: Limit['window'], t: number): { id: string; endsAt: number } {
  const d = new Date(t);
  const [y, m, day, h] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours()];
  const iso = d.toISOString();
  switch (window) {
    case 'hour':
      return { id: iso.slice(0, 13), endsAt: Date.UTC(y, m, day, h + 1) };
    case 'day':
      return { id: iso.slice(0, 10), endsAt: Date.UTC(y, m, day + 1) };
    case 'month':
      return { id: iso.slice(0, 7), endsAt: Date.UTC(y, m + 1, 1) };
  }
}

const round = (usd: number) => Math.round(usd * 1e6) / 1e6;
