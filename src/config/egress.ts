import { z } from 'zod';
import { agentPeers, mcpServers, peerRoute, routesOverlap } from './egress-peers.ts';
import { address, clientPool, count, failMode, MIB, size } from './fields.ts';

/** The `egress` section: the LLM egress listener, its providers, prices, budgets and capture. */

// Today's dearest model costs some hundreds of dollars per million tokens.
const usd = (description: string) =>
  z
    .number()
    .nonnegative()
    .max(1_000_000, 'at most 1,000,000')
    .meta({ description: `${description} USD per million tokens, at most 1,000,000.` });

const rates = {
  input: usd('Uncached input tokens.'),
  output: usd('Output tokens (reasoning tokens included).'),
  cacheRead: usd('Input tokens read from the prompt cache. Default: the input price.').optional(),
  cacheWrite: usd('Input tokens written to the prompt cache (Anthropic: the 5-minute cache). Default: the input price.').optional(),
  cacheWrite1h: usd("Input tokens written to Anthropic's 1-hour cache. Default: cacheWrite.").optional(),
};

export const priceSchema = z
  .strictObject({
    ...rates,
    longContext: z
      .strictObject({
        above: count('Input tokens of a call (cached ones included) past which the whole call is billed at these rates.', 1_000_000_000),
        ...rates,
      })
      .optional()
      .meta({ description: 'Long-context rates, as some models bill a whole call whose prompt passes a size.' }),
  })
  .meta({ description: 'The price of one model.' });

const route = (def: string) =>
  z
    .string()
    .regex(/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, 'expected a path such as /anthropic')
    .default(def)
    .meta({ description: 'Path prefix on the egress listener; the rest of the path goes to the provider as is.' });

const origin = (def: string) =>
  z
    .url({ protocol: /^https?$/, error: 'expected an origin such as https://api.anthropic.com', abort: true })
    .refine((v) => {
      const u = new URL(v);
      return (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '';
    }, 'the origin names a scheme, host and port only, with no path')
    .default(def)
    .meta({ description: 'Where the provider is. http:// only with egress.allowHttp.' });

const credential = (header: string) =>
  z
    .strictObject({
      env: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name such as ANTHROPIC_API_KEY')
        .optional()
        .meta({ description: "Environment variable of the sidecar's process holding the key (read once, at start)." }),
      file: z.string().min(1).optional().meta({ description: 'File holding the key (surrounding whitespace ignored), re-read when it changes and on SIGHUP.' }),
    })
    .refine((c) => (c.env === undefined) !== (c.file === undefined), 'give exactly one of env or file, such as { file: /var/run/secrets/llm/key }')
    .optional()
    .meta({
      description: `The provider's API key, held by the sidecar: every call goes out with it (${header}), and any key the agent sends is dropped, never forwarded; run -- <command> gives the agent a placeholder instead of its key. Default: the agent's own key passes.`,
    });

const budgetLimit = z.strictObject({
  window: z.enum(['hour', 'day', 'month']).meta({ description: 'A calendar hour, day or month (UTC).' }),
  usd: z.number().positive().max(1_000_000_000, 'at most 1,000,000,000').meta({
    description: 'Spend allowed in the window, in USD, at most 1,000,000,000; past it calls are refused with 429 before anything reaches the provider.',
  }),
  model: z
    .string()
    .regex(/^[A-Za-z0-9._:/@-]+\*?$/, 'expected a model id such as claude-opus-5, or a prefix ending in * such as claude-opus-*')
    .optional()
    .meta({ description: 'Only calls for this model (the id the agent requests), or for models starting with a prefix ending in *. Default: every model.' }),
  soft: z
    .number()
    .gt(0)
    .max(1)
    .optional()
    .meta({ description: 'Share of the limit at which a warning event is logged once per window. Default: egress.budgets.soft.' }),
});

export const egress = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .meta({ description: 'The LLM egress listener: agents reach their providers through it (ANTHROPIC_BASE_URL, OPENAI_BASE_URL).' }),
    address: address('Where the egress listener binds. Loopback by default: the agent beside the sidecar is its only client.').default('127.0.0.1:8081'),
    allowHttp: z.boolean().default(false).meta({ description: 'Allow http:// provider origins (a local model server, tests).' }),
    providers: z
      .strictObject({
        anthropic: z
          .strictObject({
            enabled: z.boolean().default(true),
            origin: origin('https://api.anthropic.com'),
            route: route('/anthropic'),
            credential: credential('x-api-key'),
          })
          .prefault({})
          .meta({ description: 'The Anthropic Messages API. ANTHROPIC_BASE_URL=http://<egress>/anthropic.' }),
        openai: z
          .strictObject({
            enabled: z.boolean().default(true),
            origin: origin('https://api.openai.com'),
            route: route('/openai'),
            credential: credential('Authorization: Bearer'),
            includeUsage: z.boolean().default(true).meta({
              description:
                'Add stream_options.include_usage to streamed Chat Completions requests without stream_options, so that they report usage, and keep the usage chunk only the sidecar asked for from the agent.',
            }),
          })
          .prefault({})
          .meta({ description: 'The OpenAI API (Chat Completions, Responses, Embeddings). OPENAI_BASE_URL=http://<egress>/openai/v1.' }),
      })
      .prefault({}),
    ...clientPool('each provider', {
      connections: 64,
      keepAlive: '60s',
      connect: '10s',
      headers: '10m',
      body: '5m',
      headersNote: ' (a long unstreamed completion takes minutes)',
    }),
    maxRequestBytes: size('Largest request body accepted (the body is read whole to find the model before the budget check); larger gets 413.', {
      min: 1,
      max: 256 * MIB,
      why: 'each request is held in memory whole; providers accept 32 to 100 MB',
    }).prefault('32mb'),
    prices: z.record(z.string().min(1), priceSchema).default({}).meta({
      description:
        'Prices by model id, over the shipped table (README: Egress, prices). A dated id such as claude-haiku-4-5-20251001 falls back to claude-haiku-4-5. Calls of a model without a price are counted in tokens, not in cost.',
    }),
    budgets: z
      .strictObject({
        limits: z
          .array(budgetLimit)
          .default([])
          .meta({ description: 'Spend limits of this agent (telemetry.agentType), shared by every sidecar on the same Redis.' }),
        soft: z.number().gt(0).max(1).default(0.8).meta({ description: 'Share of a limit at which a warning event is logged once per window.' }),
        estimate: z
          .strictObject({
            outputTokens: count(
              'Output tokens reserved for a request that names no maximum (max_tokens, max_completion_tokens, max_output_tokens).',
              10_000_000,
            ).default(4096),
            bytesPerToken: z
              .number()
              .min(1)
              .max(16)
              .default(4)
              .meta({ description: "Request bytes counted as one input token: the whole body's size, so that the estimate errs high." }),
          })
          .prefault({})
          .meta({
            description:
              "What a call reserves on its budgets before it is sent, priced with the price table: its maximum output and its request's size; settled to its cost when it ends. Concurrent calls then pass a limit by at most one call's estimate.",
          }),
        failMode: failMode('open', 'LLM calls'),
      })
      .prefault({}),
    protectPrompts: z.string().min(1).optional().meta({
      description:
        'A protection.rules rule set applied to each metered request body before it leaves for the provider: a body with nothing to protect goes byte for byte, a changed one re-serialized. Field rules act on every key, tool schemas included: prefer a rule set of detectors. Default: off.',
    }),
    capture: z
      .strictObject({
        prompts: z
          .boolean()
          .default(false)
          .meta({ description: 'Put the prompt on the LLM span (gen_ai.input.messages), after data protection. Needs protection.' }),
        completions: z
          .boolean()
          .default(false)
          .meta({ description: 'Put the completion on the LLM span (gen_ai.output.messages), after data protection. Needs protection.' }),
        maxChars: count('Characters kept of each captured text.', 1_000_000).default(16_384),
      })
      .prefault({}),
    mcpServers,
    agents: agentPeers,
  })
  .prefault({})
  .superRefine((e, ctx) => {
    const { anthropic, openai } = e.providers;
    if (anthropic.route === openai.route)
      ctx.addIssue({ code: 'custom', path: ['providers', 'openai', 'route'], message: 'two providers cannot share a route' });
    checkPeers(e, ctx);
    if (e.allowHttp) return;
    for (const name of ['anthropic', 'openai'] as const) {
      if (e.providers[name].origin.startsWith('http:')) {
        ctx.addIssue({
          code: 'custom',
          path: ['providers', name, 'origin'],
          message: 'an http:// origin sends API keys in clear text; use https:// or set egress.allowHttp',
        });
      }
    }
  })
  .meta({ description: 'LLM egress: the provider calls of the agent, measured, priced, budgeted and traced.' });

/** Peer routes clash with no provider's (enabled or not) and no other peer's; http:// needs allowHttp. */
function checkPeers(
  e: {
    allowHttp: boolean;
    providers: { anthropic: { route: string }; openai: { route: string } };
    mcpServers: z.output<typeof mcpServers>;
    agents: z.output<typeof agentPeers>;
  },
  ctx: z.RefinementCtx,
): void {
  const taken: Array<[string, string]> = [
    [e.providers.anthropic.route, 'egress.providers.anthropic'],
    [e.providers.openai.route, 'egress.providers.openai'],
  ];
  for (const [key, kind, peers] of [
    ['mcpServers', 'mcp', e.mcpServers],
    ['agents', 'a2a', e.agents],
  ] as const) {
    for (const [name, peer] of Object.entries(peers)) {
      const route = peerRoute(kind, name, peer);
      const clash = taken.find(([r]) => routesOverlap(r, route));
      if (clash !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [key, name, 'route'],
          message: `${route} overlaps the route ${clash[0]} of ${clash[1]}; give it a route of its own`,
        });
      taken.push([route, `egress.${key}.${name}`]);
      if (!e.allowHttp && peer.origin.startsWith('http:'))
        ctx.addIssue({
          code: 'custom',
          path: [key, name, 'origin'],
          message: 'an http:// origin sends calls and credentials in clear text; use https:// or set egress.allowHttp',
        });
    }
  }
}

export type EgressConfig = z.output<typeof egress>;
export type CredentialConfig = NonNullable<EgressConfig['providers']['anthropic']['credential']>;
export type PriceConfig = z.output<typeof priceSchema>;
