import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createForwardedResolver } from '../src/ingress/forwarded.ts';

function req(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers: { host: 'agent.local', ...headers } } as unknown as IncomingMessage;
}

describe('forwarded headers and the client address', () => {
  const resolve = createForwardedResolver({ trustedProxies: ['loopback', '10.0.0.0/8'], tls: false });

  it('takes the peer as the client when it is not trusted, whatever it claims, every time', () => {
    for (let i = 0; i < 3; i++) {
      expect(resolve(req('::ffff:203.0.113.7', { 'x-forwarded-for': '6.6.6.6' }))).toEqual({
        for: '203.0.113.7',
        proto: 'http',
        host: 'agent.local',
        clientAddress: '203.0.113.7',
        trusted: false,
      });
    }
  });

  it('takes a trusted peer without X-Forwarded-For as the client', () => {
    expect(resolve(req('127.0.0.1'))).toMatchObject({ for: '127.0.0.1', clientAddress: '127.0.0.1', trusted: true });
  });

  it('walks X-Forwarded-For from a trusted peer back to the first untrusted hop', () => {
    const r = resolve(req('127.0.0.1', { 'x-forwarded-for': '198.51.100.9, 10.1.2.3', 'x-forwarded-proto': 'https' }));
    expect(r).toEqual({ for: '198.51.100.9, 10.1.2.3, 127.0.0.1', proto: 'https', host: 'agent.local', clientAddress: '198.51.100.9', trusted: true });
  });

  it('keeps deciding right past its bound of remembered peers', () => {
    for (let i = 0; i < 10_050; i++) expect(resolve(req(`198.18.${i >> 8}.${i & 255}`)).trusted).toBe(false);
    for (let i = 0; i < 300; i++) expect(resolve(req(`10.0.${i % 256}.1`)).trusted).toBe(true);
    expect(resolve(req('192.0.2.1')).trusted).toBe(false);
  });
});
