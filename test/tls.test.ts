import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSidecarError } from '../src/errors/index.ts';
import { spawnCli, startServer, startSidecar } from './helpers.ts';

const OPENSSL = '/usr/bin/openssl';

/** A self-signed certificate for 127.0.0.1, made with openssl; returns PEM text. */
function makeCert(dir: string, name: string, serial: string): { cert: string; key: string; fingerprint: string } {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  execFileSync(
    OPENSSL,
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-set_serial',
      serial,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  const cert = readFileSync(certPath, 'utf8');
  return { cert, key: readFileSync(keyPath, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** Replaces a file in one step (write aside, then rename), as secret volumes do. */
function replaceFile(path: string, content: string): void {
  const aside = `${path}.new`;
  writeFileSync(aside, content);
  renameSync(aside, path);
}

/** One request over a fresh TLS connection: the answer and the certificate the sidecar presented. */
function httpsGet(url: string): Promise<{ status: number; body: string; fingerprint: string; subjectCN: string }> {
  return new Promise((resolve, reject) => {
    // agent: false -> a new connection (and handshake) every time, no session reuse.
    const req = https.get(url, { agent: false, rejectUnauthorized: false }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.once('end', () => resolve({ status: res.statusCode!, body, fingerprint: peer.fingerprint256, subjectCN: String(peer.subject?.CN) }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
}

async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await probe();
  }
  return last;
}

describe.skipIf(!existsSync(OPENSSL))('TLS termination', () => {
  let dir: string;
  let first: ReturnType<typeof makeCert>;
  let second: ReturnType<typeof makeCert>;
  let certFile: string;
  let keyFile: string;
  let upstream: Awaited<ReturnType<typeof startServer>>;
  let sidecar: Awaited<ReturnType<typeof startSidecar>>;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecar-tls-'));
    first = makeCert(dir, 'first.test', '1001');
    second = makeCert(dir, 'second.test', '2002');
    expect(first.fingerprint).not.toBe(second.fingerprint);
    certFile = join(dir, 'tls.crt');
    keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key);
    upstream = await startServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`plain upstream saw ${req.url}`);
    });
    sidecar = await startSidecar({ upstream: { url: upstream.url }, listen: { tls: { certFile, keyFile } } });
  });

  afterAll(async () => {
    await sidecar?.close();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves https and forwards to the plain-http upstream with X-Forwarded-Proto https', async () => {
    expect(sidecar.url.startsWith('https://')).toBe(true);
    const before = seen.length;
    const res = await httpsGet(`${sidecar.url}/over/tls?x=1`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('plain upstream saw /over/tls?x=1');
    expect(res.fingerprint).toBe(first.fingerprint);
    expect(res.subjectCN).toBe('first.test');
    expect(seen.length).toBe(before + 1);
    expect(seen[before]!['x-forwarded-proto']).toBe('https');
    expect(seen[before]!['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('a client that checks the certificate against it as a CA connects', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      https
        .get(`${sidecar.url}/verified`, { agent: false, ca: first.cert }, (r) => {
          r.resume();
          r.once('end', () => resolve(r.statusCode!));
        })
        .once('error', reject);
    });
    expect(res).toBe(200);
  });

  it('presents a replaced certificate on new connections, and keeps it when the next one is broken', async () => {
    // Key first, then the certificate: both land within one poll interval or two.
    replaceFile(keyFile, second.key);
    replaceFile(certFile, second.cert);
    const afterReload = await eventually(
      () => httpsGet(`${sidecar.url}/after-reload`),
      (r) => r.fingerprint === second.fingerprint,
    );
    expect(afterReload.fingerprint).toBe(second.fingerprint);
    expect(afterReload.subjectCN).toBe('second.test');
    expect(afterReload.status).toBe(200);
    expect(sidecar.logs.lines.some((l) => l.event_type === 'tls_reload' && l.level === 'info')).toBe(true);

    // A broken certificate: the reload fails, is logged, and the running certificate stays.
    const failuresBefore = sidecar.logs.lines.filter((l) => l.event_type === 'tls_reload' && l.error_type === 'SIDECAR_TLS_INVALID').length;
    replaceFile(certFile, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    await eventually(
      async () => sidecar.logs.lines.filter((l) => l.event_type === 'tls_reload' && l.error_type === 'SIDECAR_TLS_INVALID').length,
      (n) => n > failuresBefore,
    );
    expect(sidecar.logs.lines.filter((l) => l.event_type === 'tls_reload' && l.error_type === 'SIDECAR_TLS_INVALID').length).toBeGreaterThan(failuresBefore);
    const afterBroken = await httpsGet(`${sidecar.url}/after-broken`);
    expect(afterBroken.status).toBe(200);
    expect(afterBroken.fingerprint).toBe(second.fingerprint);
    expect(afterBroken.body).toBe('plain upstream saw /after-broken');
  });
});

describe.skipIf(!existsSync(OPENSSL))('TLS configuration errors at start', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sidecar-tls-bad-'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a missing certificate file is SIDECAR_TLS_INVALID', async () => {
    const { key } = makeCert(dir, 'only-key', '7');
    const keyFile = join(dir, 'present.key');
    writeFileSync(keyFile, key);
    const err = await startSidecar({ listen: { tls: { certFile: join(dir, 'missing.crt'), keyFile } } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSidecarError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'SIDECAR_TLS_INVALID' });
  });

  it('a certificate whose key does not match is SIDECAR_TLS_INVALID', async () => {
    const a = makeCert(dir, 'a.test', '11');
    const b = makeCert(dir, 'b.test', '12');
    const certFile = join(dir, 'a-cert.pem');
    const keyFile = join(dir, 'b-key.pem');
    writeFileSync(certFile, a.cert);
    writeFileSync(keyFile, b.key);
    await expect(startSidecar({ listen: { tls: { certFile, keyFile } } })).rejects.toMatchObject({ code: 'SIDECAR_TLS_INVALID' });
  });

  it('the CLI exits 2 naming SIDECAR_TLS_INVALID when the certificate file is missing', async () => {
    const cfg = join(dir, 'tls-missing.yaml');
    writeFileSync(
      cfg,
      [
        'listen:',
        '  address: 127.0.0.1:0',
        '  tls:',
        `    certFile: ${join(dir, 'nope.crt')}`,
        `    keyFile: ${join(dir, 'nope.key')}`,
        'admin:',
        '  address: 127.0.0.1:0',
        '',
      ].join('\n'),
    );
    const proc = spawnCli(['run', '--config', cfg]);
    try {
      expect(await proc.exited).toBe(2);
      expect(proc.output()).toContain('SIDECAR_TLS_INVALID');
    } finally {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    }
  });
});
