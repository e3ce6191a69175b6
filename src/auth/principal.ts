/** Who is calling, as established by the authenticator; what every later stage reasons about. */
export interface Principal {
  /** `sub` of a token, or the subject an API key was issued to. */
  subject: string;
  roles: readonly string[];
  scopes: readonly string[];
  tenantId?: string | undefined;
  sessionId?: string | undefined;
  method: 'jwt' | 'api_key';
  /** The API key's id, or the token's `kid`. */
  keyId?: string | undefined;
  /** `jti`, for revocation. */
  tokenId?: string | undefined;
  /** `iat` in seconds, for revocation by subject. */
  issuedAt?: number | undefined;
  /** `exp` in seconds; revocation entries live no longer than this. */
  expiresAt?: number | undefined;
  /** `aud`: the resources the token was issued for (MCP routes accept only their own, RFC 8707). */
  audience?: readonly string[] | undefined;
}
