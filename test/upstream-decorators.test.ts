import { once } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool, type Dispatcher } from 'undici';
import { createCircuitBreaker } from '../src/proxy/breaker.ts';
import { BreakerHandler, RetryHandler, retryable } from '../src/proxy/decorators.ts';
import type { Blame, UpstreamHandler } from '../src/proxy/relay.ts';

/** The relay's side of the contract, recorded: what reached it, and what it says of the client. */
class Recorder implements UpstreamHandler {
  replayable = true;
  blamed: Blame = 'upstream';
  readonly seen: string[] = [];
  #done: () => void = () => {};
  readonly done = new Promise<void>((resolve) => (this.#done = resolve));
  blame(): Blame {
    return this.blamed;
  }
  onResponseStart(_c: Dispatcher.DispatchController, status: number, _h: IncomingHttpHeaders): void {
    this.seen.push(`start ${status}`);
  }
  onResponseEnd(): void {
    this.seen.push('end');
    this.#done();
  }
  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    this.seen.push(`error ${(err as { code?: string }).code ?? err.name}`);
    this.#done();
  }
}

describe('retry and circuit-breaker handlers', () => {
  let server: http.Server;
  let pool: Pool;
  // Requests to /flaky: the first of each pair is cut before an answer.
  let flaky = 0;
  let requests = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      requests++;
      if (req.url === '/down' || (req.url === '/flaky' && flaky++ % 2 === 0)) {
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 4 });
  });
  afterAll(async () => {
    await pool.close();
    server.close();
  });

  const get = (path: string): Dispatcher.DispatchOptions => ({ path, method: 'GET', headers: [], body: null });

  it('retries only idempotent requests that send nothing but their head', () => {
    expect(retryable(get('/'))).toBe(true);
    expect(retryable({ ...get('/'), method: 'POST' })).toBe(false);
    expect(retryable({ ...get('/'), method: 'PUT', body: Buffer.from('x') })).toBe(false);
  });

  it('sends a request again after a connection failure, and the relay hears only the answer', async () => {
    requests = 0;
    const relay = new Recorder();
    const opts = get('/flaky');
    pool.dispatch(opts, new RetryHandler(relay, pool, opts, 1));
    await relay.done;
    expect(relay.seen).toEqual(['start 200', 'end']);
    expect(requests).toBe(2);
  });

  it('does not retry once something reached the client, nor past its attempts', async () => {
    requests = 0;
    const started = new Recorder();
    started.replayable = false;
    const opts = get('/down');
    pool.dispatch(opts, new RetryHandler(started, pool, opts, 3));
    await started.done;
    expect(started.seen).toEqual(['error UND_ERR_SOCKET']);
    expect(requests).toBe(1);

    requests = 0;
    const spent = new Recorder();
    pool.dispatch(opts, new RetryHandler(spent, pool, opts, 2));
    await spent.done;
    expect(spent.seen).toEqual(['error UND_ERR_SOCKET']);
    expect(requests).toBe(3);
  });

  it('gives the breaker one verdict per request, whatever the retries, and none when the client is to blame', async () => {
    const breaker = createCircuitBreaker({ failureThreshold: 2, openDuration: 60_000 });
    const failures = new Set([502, 503, 504]);
    const send = async (blamed: Blame) => {
      const admission = breaker.allow();
      expect(admission).toBe('request');
      const relay = new Recorder();
      relay.blamed = blamed;
      const opts = get('/down');
      pool.dispatch(opts, new RetryHandler(new BreakerHandler(relay, breaker, admission as 'request', failures), pool, opts, 1));
      await relay.done;
    };
    await send('upstream');
    expect(breaker.state).toBe('closed');
    await send('client');
    await send('gone');
    expect(breaker.state).toBe('closed');
    await send('upstream');
    expect(breaker.state).toBe('open');
  });
});
