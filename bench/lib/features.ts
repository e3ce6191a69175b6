import { configSchema } from '../../src/config/schema.ts';
import type { Scenario } from './options.ts';

/**
 * Scenarios (d) protect and (f) egress measure features with their own configuration: each
 * needs a top-level configuration key and a sidecar configuration from this file. A build
 * without one (an older one, measured for comparison) fails the scenario with a message saying
 * what it needs, and `--scenario all` skips it.
 */

export interface Feature {
  /** Top-level key of the sidecar configuration the feature brings. */
  key: string;
  /** What it is, for the message. */
  needs: string;
  /** The function of this file that configures it. */
  fill: string;
}

export const FEATURES: Partial<Record<Scenario, Feature>> = {
  protect: { key: 'protection', needs: 'the protection engine', fill: 'protectionConfig' },
  egress: { key: 'egress', needs: 'the egress listener', fill: 'egressConfig' },
};

/** Whether the sidecar's configuration schema has this top-level key. */
export function hasConfigKey(key: string, shape: object = configSchema.shape): boolean {
  return Object.hasOwn(shape, key);
}

/** The route scenario protect POSTs to (the reference policy lets agent_manager create there). */
export const PROTECT_PATH = '/api/v1/agents';

/**
 * (d) sidecar-protect's configuration on top of sidecar-full's (auth and telemetry): the
 * default rule set on request and response bodies of POST PROTECT_PATH, where the 4 KB JSON
 * request (protectBody) goes; a body that does not parse is refused (onError: refuse).
 */
export function protectionConfig(): string | undefined {
  return `protection:
  routes:
    - path: ${PROTECT_PATH}
      methods: [POST]
      rules: default
      request: true
      response: true
      onError: refuse
`;
}

/**
 * (f) sidecar-egress's configuration: the egress listener on `address`, its OpenAI provider at
 * `providerOrigin` (the bench's SSE upstream, plain HTTP on loopback), and the path prefix of
 * that provider on the listener.
 */
export function egressConfig(o: { address: string; providerOrigin: string }): { yaml: string; basePath: string } | undefined {
  return {
    yaml: `egress:
  enabled: true
  address: ${o.address}
  allowHttp: true
  providers:
    anthropic:
      enabled: false
    openai:
      enabled: true
      origin: ${o.providerOrigin}
      route: /openai
`,
    basePath: '/openai',
  };
}

/** Why the scenario cannot run in this build, or undefined when it can. */
export function missingFeature(scenario: Scenario, o: { hasKey?: (key: string) => boolean; configured?: boolean } = {}): string | undefined {
  const f = FEATURES[scenario];
  if (f === undefined) return undefined;
  const hasKey = o.hasKey ?? hasConfigKey;
  const configured =
    o.configured ??
    (scenario === 'protect' ? protectionConfig() !== undefined : egressConfig({ address: '127.0.0.1:0', providerOrigin: 'http://127.0.0.1:0' }) !== undefined);
  if (!hasKey(f.key)) return `scenario ${scenario} needs ${f.needs}: this build's configuration has no \`${f.key}\` key`;
  if (!configured)
    return `scenario ${scenario}: ${f.needs} is in this build (\`${f.key}\`), but bench/lib/features.ts has no configuration for it yet (${f.fill})`;
  return undefined;
}

/** The request of scenario protect: a JSON document of exactly `bytes` bytes with personal data in it (emails, phone numbers, a card number). */
export function protectBody(bytes = 4096): string {
  const doc = {
    agent: { name: 'support-triage', owner: { name: 'Ada Example', email: 'ada@example.com', phone: '+44 20 7946 0958' } },
    customer: { id: 'cus_0042', email: 'customer@example.org', card: '4111 1111 1111 1111', iban: 'GB82 WEST 1234 5698 7654 32' },
    messages: [] as Array<{ role: string; content: string }>,
    padding: '',
  };
  for (let i = 0; JSON.stringify(doc).length < bytes - 200; i++) {
    doc.messages.push({
      role: i % 2 ? 'assistant' : 'user',
      content: `Message ${i}: please call me back on +1 202 555 01${String(i % 100).padStart(2, '0')} or write to user${i}@example.net.`,
    });
  }
  const short = bytes - Buffer.byteLength(JSON.stringify(doc));
  if (short < 0) throw new Error(`protectBody: cannot make a document of ${bytes} bytes`);
  doc.padding = 'x'.repeat(short);
  return JSON.stringify(doc);
}

/** The request of scenario egress: a streamed chat completion, as an OpenAI client sends it (POST to <base>/v1/chat/completions). */
export const EGRESS_REQUEST = {
  path: '/v1/chat/completions',
  method: 'POST' as const,
  headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench-not-a-real-key' },
  body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Count to one thousand.' }] }),
};
