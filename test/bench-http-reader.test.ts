import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { RawHttpClient, rawPost, ResponseReader } from '../bench/lib/http-reader.ts';
import { parseSchedstatNanos, treeCpuNanos } from '../bench/lib/proc.ts';

const CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nX-Output-Tokens: 42\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n';

function readAll(wire: string, size: number): ResponseReader {
  const r = new ResponseReader();
  let done = false;
  for (let i = 0; i < wire.length; i += size) done = r.push(Buffer.from(wire.slice(i, i + size), 'latin1'));
  expect(done).toBe(true);
  return r;
}

describe('bench HTTP/1.1 response reader', () => {
  it('counts chunked body bytes, framing, extensions and trailers left out, in any split', () => {
    for (const size of [1, 2, 3, 5, 8, 13, CHUNKED.length]) {
      const r = readAll(CHUNKED, size);
      expect([r.status, r.headers['x-output-tokens'], r.bodyBytes]).toEqual([200, '42', 16]);
      expect(r.firstBodyAt).toBeTypeOf('bigint');
    }
  });

  it('counts a Content-Length body, and an empty one ends with its head', () => {
    expect(readAll('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc', 2).bodyBytes).toBe(3);
    const empty = readAll('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n', 4);
    expect([empty.status, empty.bodyBytes, empty.firstBodyAt]).toEqual([204, 0, undefined]);
  });

  it('refuses a Content-Length that is not a length instead of waiting for ever', () => {
    expect(() => new ResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n'))).toThrow(/Content-Length that is not a length/);
  });

  it('refuses bytes past the end and a body read to the close', () => {
    expect(() => new ResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab'))).toThrow(/1 bytes after the end/);
    expect(() => new ResponseReader().push(Buffer.from('HTTP/1.1 200 OK\r\n\r\nab'))).toThrow(/neither Content-Length nor chunked/);
  });

  it('sends requests one after another on one keep-alive connection', async () => {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.write('x'.repeat(1000));
        res.end('y'.repeat(24));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new RawHttpClient('127.0.0.1', port);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await client.send(rawPost(`127.0.0.1:${port}`, '/', { 'content-type': 'application/json' }, '{"a":1}'));
        expect([r.status, r.bodyBytes]).toEqual([200, 1024]);
      }
    } finally {
      client.close();
      server.close();
    }
  });
});

describe('bench CPU per thread', () => {
  it('reads the run time of a schedstat line, and this process has run', () => {
    expect(parseSchedstatNanos('194115487 14217701 820\n')).toBe(194115487);
    expect(() => parseSchedstatNanos('x y z')).toThrow(/not a schedstat line/);
    expect(treeCpuNanos(process.pid)).toBeGreaterThan(0);
  });
});
