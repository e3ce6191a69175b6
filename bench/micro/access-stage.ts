// Per-request cost of the identity and access stages, in isolation (no sockets).
// npm run bench:micro
import { generateKeyPair, SignJWT } from 'jose';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI } from 'jose';
import { createAccess } from '../../src/access/index.ts';
import { validateConfig } from '../../src/config/index.ts';
import { runStages, type RequestContext } from '../../src/core/index.ts';
import { createLogger } from '../../src/log/index.ts';

const { publicKey, privateKey } = await generateKeyPair('RS256');
const dir = mkdtempSync(join(tmpdir(), 'access-micro-'));
const keyFile = join(dir, 'key.pem');
writeFileSync(keyFile, await exportSPKI(publicKey));
const token = await new SignJWT({ sub: 'bench', roles: ['analyst'], jti: 'j1' })
  .setProtectedHeader({ alg: 'RS256' })
  .setIssuedAt()
  .setExpirationTime('1h')
  .sign(privateKey);
const config = validateConfig({ auth: { jwt: { keyFiles: [keyFile] } }, log: { level: 'warn' } });
const access = await createAccess(config, createLogger('warn'));

const socket = new Socket();
function context(): RequestContext {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/api/v1/agents';
  req.headers = { host: 'a', authorization: `Bearer ${token}`, 'user-agent': 'bench' };
  req.rawHeaders = ['host', 'a', 'authorization', `Bearer ${token}`, 'user-agent', 'bench'];
  return {
    req,
    res: undefined,
    socket,
    requestId: 'r',
    startedAt: 0n,
    target: '/api/v1/agents',
    forwarded: { for: '127.0.0.1', proto: 'http', host: 'a', clientAddress: '127.0.0.1', trusted: true },
    upstreamHeaders: new Map(),
    strippedHeaders: new Set(),
    responseHeaders: new Map(),
    bytesIn: 0,
    bytesOut: 0,
  };
}

async function measure(label: string, n: number) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await runStages(access.stages, context());
  const ns = Number(process.hrtime.bigint() - start) / n;
  process.stdout.write(`${label}: ${(ns / 1000).toFixed(2)} µs per request\n`);
}
await measure('warm-up', 20_000);
await measure('access stages (cached token, RBAC, audit off by level)', 200_000);
const start = process.hrtime.bigint();
for (let i = 0; i < 200_000; i++) context();
process.stdout.write(`context construction alone: ${(Number(process.hrtime.bigint() - start) / 200_000 / 1000).toFixed(2)} µs\n`);
await access.close();
