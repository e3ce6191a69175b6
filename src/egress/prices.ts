import type { PriceConfig } from '../config/index.ts';
import { DEFAULT_PRICES } from './price-table.ts';
import { totalInput, type Usage } from './usage.ts';

/** The cost of one call in USD, by the token_type label of llm_api_cost_usd_total. */
export interface Cost {
  input: number;
  output: number;
  cache_read: number;
  cache_creation: number;
  total: number;
}

export interface PriceBook {
  /** The price of a model id: exact, else without a date or -latest suffix; undefined when unknown. */
  priceOf(model: string): PriceConfig | undefined;
  /** The cost of `usage` for `model`, or undefined for a model without a price. */
  cost(model: string, usage: Usage): Cost | undefined;
}

// claude-haiku-4-5-20251001, gpt-4o-2024-08-06, claude-3-7-sonnet-latest
const SNAPSHOT = /-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$/;
const PER_TOKEN = 1e-6;

/**
 * The shipped price table with egress.prices over it (an entry replaces the shipped one of the
 * same id). Lookups are exact: a dated snapshot falls back to its undated id and nothing else,
 * so that gpt-5.4-mini is never priced as gpt-5.4 because a prefix matched.
 *
 * @example
 * const book = createPriceBook({ 'my-finetune': { input: 3, output: 12 } });
 * book.cost('claude-sonnet-4-6-20260101', usage)?.total; // USD
 */
export function createPriceBook(overrides: Readonly<Record<string, PriceConfig>>): PriceBook {
  const table = new Map<string, PriceConfig>([...DEFAULT_PRICES, ...Object.entries(overrides)]);
  const priceOf = (model: string) => table.get(model) ?? table.get(model.replace(SNAPSHOT, ''));
  return {
    priceOf,
    cost(model, usage) {
      const price = priceOf(model);
      return price === undefined ? undefined : costOf(price, usage);
    },
  };
}

/** Anthropic and OpenAI bill a whole call at the long-context rates once its input passes the threshold. */
export function costOf(price: PriceConfig, u: Usage): Cost {
  const long = price.longContext;
  const p = long !== undefined && totalInput(u) > long.above ? long : price;
  const cacheWrite = p.cacheWrite ?? p.input;
  const cacheWrite1h = p.cacheWrite1h ?? cacheWrite;
  const cost = {
    input: u.input * p.input * PER_TOKEN,
    output: u.output * p.output * PER_TOKEN,
    cache_read: u.cacheRead * (p.cacheRead ?? p.input) * PER_TOKEN,
    cache_creation: ((u.cacheWrite - u.cacheWrite1h) * cacheWrite + u.cacheWrite1h * cacheWrite1h) * PER_TOKEN,
    total: 0,
  };
  cost.total = cost.input + cost.output + cost.cache_read + cost.cache_creation;
  return cost;
}
