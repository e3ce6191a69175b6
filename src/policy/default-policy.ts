/**
 * The built-in policy: the reference design's five roles, their permissions and its route map,
 * plus an unauthenticated /health. It goes through the same validation as a file, and
 * config/policy.example.yaml is the same document with comments (a test keeps them equal).
 * Its type is checked where it is compiled (load.ts), which keeps this file free of imports.
 */
export const DEFAULT_POLICY = {
  roles: {
    admin: [
      'create:agent',
      'update:agent',
      'delete:agent',
      'view:agent',
      'view:conversation',
      'delete:conversation',
      'view:metrics',
      'view:logs',
      'view:traces',
      'manage:users',
      'manage:settings',
      'view:audit_log',
    ],
    agent_manager: ['create:agent', 'update:agent', 'delete:agent', 'view:agent', 'view:conversation', 'view:metrics', 'view:logs'],
    agent_operator: ['view:agent', 'update:agent', 'view:conversation', 'view:metrics'],
    analyst: ['view:agent', 'view:conversation', 'view:metrics', 'view:logs', 'view:traces'],
    user: ['view:conversation'],
  },
  routes: [
    { path: '/api/v1/agents', methods: { GET: 'view:agent', POST: 'create:agent' } },
    { path: '/api/v1/agents/{agent_id}', methods: { GET: 'view:agent', PUT: 'update:agent', DELETE: 'delete:agent' } },
    { path: '/api/v1/conversations', methods: { GET: 'view:conversation' } },
    { path: '/api/v1/metrics', methods: { GET: 'view:metrics' } },
    // HEAD follows GET, so load balancers may probe with either.
    { path: '/health', public: true, methods: ['GET'] },
  ],
};
