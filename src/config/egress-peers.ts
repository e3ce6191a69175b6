import { z } from 'zod';

/**
 * The agent's outbound MCP servers and A2A peers (`egress.mcpServers`, `egress.agents`): each
 * a route on the egress listener, as the providers have, with an allowlist of what the agent
 * may call through it.
 */

/**
 * A2A JSON-RPC methods by their 1.0 name, with the 0.3 spelling (none for ListTasks, new in
 * 1.0). Allowing either name allows both: a peer may speak either revision.
 */
export const A2A_METHODS: Readonly<Record<string, readonly string[]>> = {
  SendMessage: ['message/send'],
  SendStreamingMessage: ['message/stream'],
  GetTask: ['tasks/get'],
  ListTasks: [],
  CancelTask: ['tasks/cancel'],
  SubscribeToTask: ['tasks/resubscribe'],
  CreateTaskPushNotificationConfig: ['tasks/pushNotificationConfig/set'],
  GetTaskPushNotificationConfig: ['tasks/pushNotificationConfig/get'],
  ListTaskPushNotificationConfig: ['tasks/pushNotificationConfig/list', 'ListTaskPushNotificationConfigs'],
  DeleteTaskPushNotificationConfig: ['tasks/pushNotificationConfig/delete'],
  GetExtendedAgentCard: ['agent/getAuthenticatedExtendedCard'],
};
const KNOWN_METHODS = new Set(Object.entries(A2A_METHODS).flatMap(([name, others]) => [name, ...others]));

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ROUTE = /^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;
// RFC 9110 5.6.2 token; hop-by-hop headers and the ones the hop sets itself are the sidecar's.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade', 'proxy-connection', 'expect', 'trailer']);

// Unlike a provider's, a peer's origin has no default.
const origin = z
  .url({ protocol: /^https?$/, error: 'expected an origin such as https://mcp.example.com', abort: true })
  .refine((v) => {
    const u = new URL(v);
    return (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '';
  }, 'the origin names a scheme, host and port only, with no path: the rest of the request path goes to it as is')
  .meta({ description: 'Where the peer is: scheme, host and port. http:// only with egress.allowHttp.' });

const route = (example: string) =>
  z
    .string()
    .regex(ROUTE, `expected a path such as ${example}`)
    .optional()
    .meta({ description: `Path prefix on the egress listener; the rest of the path goes to the origin as is. Default: ${example}.` });

const headers = z
  .record(
    z
      .string()
      .regex(TOKEN, 'expected a header name')
      .refine((n) => !RESERVED.has(n.toLowerCase()), 'a hop-by-hop or framing header cannot be set here'),
    z.string().regex(/^[^\r\n\0]*$/, 'a header value cannot hold CR, LF or NUL'),
  )
  .optional()
  .meta({
    description:
      "Headers added to every request to the peer, replacing the agent's own of the same name (a credential the agent then never holds: Authorization: Bearer ${env:TOKEN}). Values are never logged.",
  });

const mcpServer = z
  .strictObject({
    origin,
    route: route('/mcp/<name>'),
    tools: z
      .array(
        z
          .string()
          .regex(/^[^*]*\*?$/, 'a tool name, or a prefix ending in * (a lone * allows every tool)')
          .min(1),
      )
      .meta({
        description:
          'The tools the agent may call (tools/call) and see (tools/list): names, or prefixes ending in *. Required; [] allows none, ["*"] every one. Anything else is refused with SIDECAR_TOOL_NOT_ALLOWED before it reaches the server.',
      }),
    headers,
  })
  .meta({ description: 'An MCP server the agent calls (Streamable HTTP): point its MCP client at http://<egress>/mcp/<name>/<path on the server>.' });

const agentPeer = z
  .strictObject({
    origin,
    route: route('/a2a/<name>'),
    methods: z
      .array(z.string().refine((m) => KNOWN_METHODS.has(m), { message: `an A2A JSON-RPC method: ${[...KNOWN_METHODS].join(', ')}` }))
      .optional()
      .meta({
        description:
          "The A2A JSON-RPC methods the agent may call, by either revision's name (SendMessage or message/send: one allows both). Default: every method. Others are refused with SIDECAR_A2A_METHOD_NOT_ALLOWED.",
      }),
    headers,
  })
  .meta({ description: 'An A2A peer the agent calls over JSON-RPC: point its A2A client at http://<egress>/a2a/<name>/<path on the peer>.' });

const peerName = (what: string) => z.string().regex(NAME, `a ${what} name is lower-case letters, digits, - and _ (it makes the default route)`);

export const mcpServers = z
  .record(peerName('server'), mcpServer)
  .default({})
  .meta({ description: 'MCP servers the agent calls through the egress listener, by name: tool allowlist and audit of every tools/call.' });

export const agentPeers = z
  .record(peerName('peer'), agentPeer)
  .default({})
  .meta({ description: 'A2A peers the agent calls through the egress listener, by name: method allowlist and audit of every call.' });

export type McpServerConfig = z.output<typeof mcpServer>;
export type AgentPeerConfig = z.output<typeof agentPeer>;

/** The route a peer is served under: its own, or /mcp/<name> and /a2a/<name>. */
export function peerRoute(kind: 'mcp' | 'a2a', name: string, config: { route?: string | undefined }): string {
  return config.route ?? `/${kind}/${name}`;
}

/** Whether two route prefixes would both match one path (routes match at a segment boundary). */
export function routesOverlap(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}
