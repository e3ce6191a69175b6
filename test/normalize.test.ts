import { describe, expect, it } from 'vitest';
import type { SidecarError } from '../src/errors/index.ts';
import { normalizePath } from '../src/policy/normalize.ts';

const norm = (p: string) => normalizePath(p, { rejectSemicolons: true });
const code = (p: string) => {
  try {
    norm(p);
  } catch (err) {
    return (err as SidecarError).code;
  }
  return 'accepted';
};

describe('normalizePath', () => {
  it.each([
    ['/api/v1/agents', '/api/v1/agents'],
    ['/api/v1/agents?x=1&y=%2F', '/api/v1/agents?x=1&y=%2F'],
    ['/', '/'],
    ['//api/v1/agents', '/api/v1/agents'],
    ['/api//v1///agents', '/api/v1/agents'],
    ['/api/v1/agents/', '/api/v1/agents'],
    ['/api/v1/conversations/../agents', '/api/v1/agents'],
    ['/api/v1/./agents', '/api/v1/agents'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/api/v1/%2e%2e/v1/agents', '/api/v1/agents'],
    ['/api/v1/agents/%2E', '/api/v1/agents'],
    ['/%61pi/v1/agents', '/api/v1/agents'],
    ['/api/v1/agents/%7euser', '/api/v1/agents/~user'],
    ['/api/v1/agents/a%20b', '/api/v1/agents/a%20b'],
    ['/api/v1/agents/a%c3%a9', '/api/v1/agents/a%C3%A9'],
    ['/api/v1/agents/%252e%252e', '/api/v1/agents/%252e%252e'],
    ['/api/v1/agents/..x', '/api/v1/agents/..x'],
    ['/api/v1/.well-known', '/api/v1/.well-known'],
  ])('%s -> %s', (input, expected) => {
    expect(norm(input)).toBe(expected);
  });

  it.each(['/api/v1/agents%2F1', '/api/v1/agents%2f..%2f', '/api/%5Cagents', '/api\\v1', '/api/%00', '/api/%zz', '/api/%4', '/api/v1/agents;jsessionid=1'])(
    'refuses %s with SIDECAR_PATH_INVALID',
    (input) => {
      expect(code(input)).toBe('SIDECAR_PATH_INVALID');
    },
  );

  it('keeps semicolons when told to', () => {
    expect(normalizePath('/a;b', { rejectSemicolons: false })).toBe('/a;b');
  });

  it('is idempotent', () => {
    for (const p of ['//a/./b/../c/', '/%61/%2e%2e/b', '/x/y%20z']) expect(norm(norm(p))).toBe(norm(p));
  });
});
