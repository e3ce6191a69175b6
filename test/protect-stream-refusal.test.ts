import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, startSidecar } from './helpers.ts';

let upstream: Awaited<ReturnType<typeof startServer>>;
let sidecar: Awaited<ReturnType<typeof startSidecar>>;

beforeAll(async () => {
  upstream = await startServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // Two good lines, then one that cannot be protected, all in the same turn.
    res.write('{"a":"bob@example.com"}\n');
    res.write('{"b":1}\n');
    res.end('not json\n');
  });
  sidecar = await startSidecar({
    upstream: { url: upstream.url, circuitBreaker: { enabled: false } },
    protection: { maxBodyBytes: '4kb', routes: [{ path: '/api/*' }] },
  });
});
afterAll(async () => {
  await sidecar?.close();
  await upstream?.close();
});

describe('a streamed response refused mid-way', () => {
  it('delivers the head and every frame protected before the refused one, then cuts the stream', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await request(`${sidecar.url}/api/lines`);
      let got = '';
      let cut = false;
      try {
        for await (const c of res.body) got += (c as Buffer).toString();
      } catch {
        cut = true;
      }
      expect(res.statusCode).toBe(200);
      expect(got).toBe('{"a":"[REDACTED:email]"}\n{"b":1}\n');
      expect(cut).toBe(true);
    }
  });
});
