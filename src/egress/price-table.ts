import type { PriceConfig } from '../config/index.ts';

/**
 * The shipped prices, USD per million tokens, from the providers' published price lists
 * (November 2026). Standard tier only: batch, flex and priority tiers are billed differently
 * and cannot be told apart on the wire. egress.prices overrides or adds entries by model id.
 */
export const PRICES_AS_OF = '2026-11';

type Row = readonly [input: number, output: number, cacheRead: number, cacheWrite?: number, cacheWrite1h?: number];

const row = ([input, output, cacheRead, cacheWrite, cacheWrite1h]: Row): PriceConfig => {
  const p: PriceConfig = { input, output, cacheRead };
  if (cacheWrite !== undefined) p.cacheWrite = cacheWrite;
  if (cacheWrite1h !== undefined) p.cacheWrite1h = cacheWrite1h;
  return p;
};

const same = (ids: readonly string[], r: Row): Array<[string, PriceConfig]> => ids.map((id) => [id, row(r)]);

// Anthropic: cache writes to the 5-minute cache cost 1.25x input, to the 1-hour cache 2x.
const anthropic: Array<[string, PriceConfig]> = [
  ...same(['claude-fable-5-1', 'claude-mythos-5-1'], [10, 50, 0.25, 12.5, 20]),
  ...same(['claude-fable-5', 'claude-mythos-5'], [10, 50, 1, 12.5, 20]),
  ['claude-opus-5-5', row([4, 20, 0.2, 5, 8])],
  ...same(['claude-opus-5', 'claude-opus-4-8', 'claude-opus-4-7', 'claude-opus-4-6', 'claude-opus-4-5'], [5, 25, 0.5, 6.25, 10]),
  ...same(['claude-opus-4-1', 'claude-opus-4-0', 'claude-opus-4', 'claude-3-opus'], [15, 75, 1.5, 18.75, 30]),
  ...same(['claude-sonnet-5-5', 'claude-sonnet-5'], [2, 10, 0.2, 2.5, 4]),
  ...same(['claude-sonnet-4-6', 'claude-3-7-sonnet', 'claude-3-5-sonnet'], [3, 15, 0.3, 3.75, 6]),
  // Sonnet 4 and 4.5 bill a whole call at long-context rates past 200K input tokens (1M context).
  ...same(['claude-sonnet-4-5', 'claude-sonnet-4-0', 'claude-sonnet-4'], [3, 15, 0.3, 3.75, 6]).map(([id, p]): [string, PriceConfig] => [
    id,
    { ...p, longContext: { above: 200_000, input: 6, output: 22.5, cacheRead: 0.6, cacheWrite: 7.5, cacheWrite1h: 12 } },
  ]),
  // Haiku 5.5 is billed by prompt size: up to 100K input tokens, and above.
  [
    'claude-haiku-5-5',
    { ...row([0.1, 0.5, 0.01, 0.125, 0.2]), longContext: { above: 100_000, input: 0.5, output: 2.5, cacheRead: 0.05, cacheWrite: 0.625, cacheWrite1h: 1 } },
  ],
  ['claude-haiku-4-5', row([1, 5, 0.1, 1.25, 2])],
  ['claude-3-5-haiku', row([0.8, 4, 0.08, 1, 1.6])],
  ['claude-3-haiku', row([0.25, 1.25, 0.03, 0.3, 0.5])],
];

// OpenAI: the cached-input column; prompt caching writes are not billed apart except where noted.
const openai: Array<[string, PriceConfig]> = [
  ['gpt-5.6-sol', row([5, 30, 0.5])],
  ['gpt-5.6-terra', row([2.5, 15, 0.25])],
  ['gpt-5.6-luna', row([1, 6, 0.1])],
  // Past 272K input tokens a whole gpt-5.5 call is billed at 2x input and 1.5x output.
  ['gpt-5.5', { ...row([5, 30, 0.5]), longContext: { above: 272_000, input: 10, output: 45, cacheRead: 1 } }],
  ...same(['gpt-5.5-pro', 'gpt-5.4-pro'], [30, 180, 30]),
  ['gpt-5.4', row([2.5, 15, 0.25])],
  ['gpt-5.4-mini', row([0.75, 4.5, 0.075])],
  ['gpt-5.4-nano', row([0.2, 1.25, 0.02])],
  ['gpt-5.2', row([1.75, 14, 0.175])],
  ...same(['gpt-5.1', 'gpt-5'], [1.25, 10, 0.125]),
  ['gpt-5-mini', row([0.25, 2, 0.025])],
  ['gpt-5-nano', row([0.05, 0.4, 0.005])],
  ['gpt-4.1', row([2, 8, 0.5])],
  ['gpt-4.1-mini', row([0.4, 1.6, 0.1])],
  ['gpt-4.1-nano', row([0.1, 0.4, 0.025])],
  ['gpt-4o', row([2.5, 10, 1.25])],
  ['gpt-4o-mini', row([0.15, 0.6, 0.075])],
  ['o3', row([2, 8, 0.5])],
  ['o4-mini', row([1.1, 4.4, 0.275])],
  ['o3-mini', row([1.1, 4.4, 0.55])],
  ['o1', row([15, 60, 7.5])],
  ['text-embedding-3-small', row([0.02, 0, 0.02])],
  ['text-embedding-3-large', row([0.13, 0, 0.13])],
  ['text-embedding-ada-002', row([0.1, 0, 0.1])],
];

export const DEFAULT_PRICES: ReadonlyMap<string, PriceConfig> = new Map([...anthropic, ...openai]);
