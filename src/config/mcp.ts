import { z } from 'zod';
import { count, MIB, size } from './fields.ts';

/**
 * The `mcp` section: limits of the MCP routes (policy routes with an `mcp:` block; their rules
 * live in the policy file) and the OAuth protected resource they are (RFC 9728).
 */

const origin = z
  .url({ protocol: /^https?$/, error: 'expected the origin clients reach the sidecar at, such as https://agents.example.com', abort: true })
  .refine((v) => {
    const u = new URL(v);
    return (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === '';
  }, 'an origin only (scheme, host, port): each MCP route adds its own path, e.g. https://agents.example.com + /mcp');

const protectedResource = z
  .strictObject({
    origin: origin.meta({
      description:
        "The origin clients reach the sidecar at. The resource identifier of an MCP route is this origin and its path (https://agents.example.com/mcp): what its metadata names and what a token's aud must hold there (RFC 8707).",
    }),
    authorizationServers: z
      .array(z.url({ protocol: /^https?$/, error: 'expected an issuer URL such as https://auth.example.com' }))
      .optional()
      .meta({ description: 'Issuers of the tokens the MCP routes accept, for authorization_servers. Default: auth.jwt.issuer.' }),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 3.3)'))
      .optional()
      .meta({
        description: 'scopes_supported of the metadata: the scopes clients may ask the authorization server for.',
      }),
    requireAudience: z.boolean().default(true).meta({
      description:
        "Accept on MCP routes only tokens whose aud names the route's resource, so that a token minted for another server is refused (SIDECAR_TOKEN_AUDIENCE_REFUSED). API keys, issued for this sidecar, are not affected.",
    }),
  })
  .meta({
    description:
      'Make the MCP routes an OAuth protected resource: /.well-known/oauth-protected-resource (and /.well-known/oauth-protected-resource/<route path>) serve RFC 9728 metadata, and 401s on MCP routes point at it (WWW-Authenticate resource_metadata). Needs auth.jwt.',
  });

export const mcp = z
  .strictObject({
    maxMessageBytes: size(
      "Largest MCP message read on an MCP route, a client's POST or one list answer of the agent (which is filtered); larger gets 413 SIDECAR_MCP_MESSAGE_TOO_LARGE (or 502 for an answer).",
      {
        min: 1024,
        max: 64 * MIB,
        why: 'each message is held whole in memory while it is authorized',
      },
    ).prefault('4mb'),
    maxDepth: count("Deepest nesting of objects and arrays in a client's MCP message; deeper gets 400 SIDECAR_MCP_MESSAGE_TOO_DEEP.", 1000).default(64),
    protectedResource: protectedResource.optional(),
    capture: z
      .strictObject({
        arguments: z.boolean().default(false).meta({
          description:
            "Put a tools/call's arguments on its MCP span (gen_ai.tool.call.arguments), after data protection: on the MCP routes and for the agent's MCP servers (egress.mcpServers). Needs protection.telemetry.",
        }),
        results: z.boolean().default(false).meta({
          description: "Put a tools/call's result on its MCP span (gen_ai.tool.call.result), after data protection. Needs protection.telemetry.",
        }),
        maxChars: count('Characters kept of each captured value, cut after protection.', 1_000_000).default(16_384),
      })
      .prefault({})
      .meta({ description: 'Tool arguments and results on MCP spans (both sides), always through data protection. Default: neither.' }),
  })
  .prefault({})
  .meta({ description: 'MCP (Model Context Protocol) routes: the policy routes with an mcp: block.' });
