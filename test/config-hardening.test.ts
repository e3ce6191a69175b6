import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLEAN_ENV, expectFailure, runCli, STACK_FRAME } from './cli-run.ts';
import { rawExchange, spawnCli, startServer, waitForStartup } from './helpers.ts';

let dir: string;
const running: Array<ReturnType<typeof spawnCli>> = [];

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A configuration `run` can start on free loopback ports, telemetry off, plus `extra` lines (which may set those keys themselves). */
function runnable(name: string, extra: string[] = []): string {
  const defaults = ['listen: { address: 127.0.0.1:0 }', 'admin: { address: 127.0.0.1:0 }', 'telemetry: { enabled: false }'];
  const given = new Set(extra.map((l) => l.split(':')[0]));
  return file(name, [...defaults.filter((l) => !given.has(l.split(':')[0])), ...extra, ''].join('\n'));
}

/** validate and run of the same file: both refuse it, alike, and run binds nothing. */
async function bothRefuse(config: string, code: string, env: NodeJS.ProcessEnv = {}): Promise<{ validate: string; run: string }> {
  const validate = await runCli(['validate', '--config', config], env);
  expectFailure(validate, code);
  const run = await runCli(['run', '--config', config], env);
  expectFailure(run, code);
  expect(run.stdout).not.toContain('"event_type":"startup"');
  expect(run.stderr).toBe(validate.stderr);
  return { validate: validate.stderr, run: run.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sidecar-hardening-'));
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('${env:…} values are text, never parsed, never shown', () => {
  const jwtConfig = () => file('jwt-env.yaml', 'auth:\n  jwt:\n    secret: ${env:JWT_SECRET}\n');

  it('a secret with YAML indicators, a " #" or only digits validates, and is never printed', { timeout: 90_000 }, async () => {
    const config = jwtConfig();
    const secrets = [
      '@starts-with-an-at-sign-0123456789abcdef',
      '*starts-like-an-alias-0123456789abcdefgh',
      '%starts-like-a-directive-0123456789abcde',
      '`starts-with-a-backtick-0123456789abcdef',
      '{starts-like-a-flow-map-0123456789abcdef',
      '[starts-like-a-flow-list, 0123456789abcd',
      'has a comment marker #inside-0123456789abcdef',
      '12345678901234567890123456789012345678',
      '&anchor [*anchor] !!binary | > "quoted" \'single\'',
      '- looks like a list item: key: value 0123456789',
    ];
    for (const secret of secrets) {
      const r = await runCli(['validate', '--config', config], { JWT_SECRET: secret });
      expect(r.code, `${secret}: ${r.stderr}`).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });

  it('a secret that is refused is not shown in the refusal either', async () => {
    const config = jwtConfig();
    for (const secret of ['@short-secret', '{short: 1}', '*alias']) {
      const r = await runCli(['validate', '--config', config], { JWT_SECRET: secret });
      expectFailure(r, 'SIDECAR_CONFIG_INVALID');
      expect(r.stderr).toContain('auth.jwt.secret');
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });

  it('a message that would quote a value shows its reference instead', async () => {
    const marker = 'rule-set-from-the-environment-7f3a9c';
    const config = file('env-echo.yaml', 'protection:\n  telemetry:\n    rules: ${env:RULES}\n');
    const r = await runCli(['validate', '--config', config], { RULES: marker });
    expectFailure(r, 'SIDECAR_CONFIG_INVALID');
    expect(r.stderr).toContain('protection.telemetry.rules');
    expect(r.stderr).not.toContain(marker);
    // Short values too, where the schema would have quoted them: a pattern, a key id.
    const pattern = file(
      'env-pattern.yaml',
      'protection:\n  rules:\n    default:\n      custom: [{ name: mine, pattern: "${env:PATTERN}" }]\n  keys:\n    active: ${env:ACTIVE}\n    ring: [{ id: k1, env: NO_SUCH_KEY_VAR }]\n',
    );
    const p = await runCli(['validate', '--config', pattern], { PATTERN: 'q(', ACTIVE: 'k9' });
    expectFailure(p, 'SIDECAR_CONFIG_INVALID');
    expect(p.stderr).toContain('protection.rules.default.custom.0.pattern');
    expect(p.stderr).toContain('protection.keys.active');
    expect(p.stderr).not.toContain('q(');
    expect(p.stderr).not.toContain('k9');
  });

  it('an env value that is an alias bomb or a 50,000-deep list stays text, in one piece', { timeout: 90_000 }, async () => {
    const bomb = 'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]';
    const deep = '['.repeat(50_000) + ']'.repeat(50_000);
    const text = file('env-text.yaml', 'telemetry:\n  serviceName: ${env:NAME}\n');
    for (const value of [bomb, deep]) expect((await runCli(['validate', '--config', text], { NAME: value })).code).toBe(0);
    // Where the schema wants a number, such text is refused at the key, not parsed.
    const number = file('env-number.yaml', 'upstream:\n  connections: ${env:CONNS}\n');
    for (const value of [bomb, deep, '0x10', '1e999']) {
      const r = await runCli(['validate', '--config', number], { CONNS: value });
      expectFailure(r, 'SIDECAR_CONFIG_INVALID');
      expect(r.stderr).toContain('upstream.connections');
    }
  });

  it('a whole reference takes the type the schema asks for at its key, and only there', async () => {
    const config = file(
      'env-typed.yaml',
      [
        'upstream:',
        '  connections: ${env:CONNS}',
        '  circuitBreaker: { enabled: "${env:BREAKER}" }',
        '  timeouts: { connect: "${env:CONNECT}" }',
        'telemetry:',
        '  serviceVersion: ${env:VERSION}',
        '  traces: { sampleRatio: "${env:RATIO}" }',
        '',
      ].join('\n'),
    );
    // 1.10 stays the text "1.10" (a version), 2500 is a number of milliseconds, FALSE a boolean.
    const ok = await runCli(['validate', '--config', config], { CONNS: '16', BREAKER: 'FALSE', CONNECT: '2500', VERSION: '1.10', RATIO: '0.25' });
    expect(ok.code, ok.stderr).toBe(0);
    const bad = await runCli(['validate', '--config', config], { CONNS: '16', BREAKER: 'yes', CONNECT: '2500', VERSION: '1.10', RATIO: '0.25' });
    expectFailure(bad, 'SIDECAR_CONFIG_INVALID');
    expect(bad.stderr).toContain('upstream.circuitBreaker.enabled');
  });

  it('a running sidecar accepts a token signed with the whole secret and refuses one signed with the part before " #"', async () => {
    const secret = '@secret with a comment marker #and-the-rest-of-it-0123456789';
    const prefix = secret.slice(0, secret.indexOf(' #'));
    const upstream = await startServer((_req, res) => res.end('agent'));
    try {
      const policy = file('jwt-policy.yaml', 'roles:\n  reader: [read:things]\nroutes:\n  - path: /things\n    methods: { GET: read:things }\n');
      const config = runnable('jwt-run.yaml', [
        'auth:',
        '  jwt:',
        '    secret: ${env:JWT_SECRET}',
        `policy: { file: ${policy} }`,
        `upstream: { url: ${upstream.url} }`,
      ]);
      const proc = spawnCli(['run', '--config', config], { ...CLEAN_ENV, JWT_SECRET: secret });
      running.push(proc);
      const { listen } = await waitForStartup(proc);
      const sign = (key: string) =>
        new SignJWT({ roles: ['reader'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('5m').sign(new TextEncoder().encode(key));
      const call = async (key: string) => {
        const res = await request(`${listen}/things`, { headers: { authorization: `Bearer ${await sign(key)}` } });
        const body = await res.body.text();
        return { status: res.statusCode, body };
      };
      const whole = await call(secret);
      expect(whole).toEqual({ status: 200, body: 'agent' });
      const cut = await call(prefix);
      expect(cut.status).toBe(401);
      expect(JSON.parse(cut.body)).toMatchObject({ error: { code: 'SIDECAR_TOKEN_SIGNATURE_INVALID' } });
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      expect(proc.output()).not.toContain(secret);
      expect(proc.output()).not.toContain(prefix);
    } finally {
      await upstream.close();
    }
  });
});

describe('validate refuses exactly what run refuses', () => {
  it('HS256 without a secret', async () => {
    const r = await bothRefuse(runnable('hs-no-secret.yaml', ['auth: { jwt: { algorithms: [HS256] } }']), 'SIDECAR_CONFIG_INVALID');
    expect(r.validate).toContain('auth.jwt.algorithms');
  });

  it('a JWT key file that is missing, garbage PEM, a private key, or a device', { timeout: 90_000 }, async () => {
    const garbage = file('garbage.pem', '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const priv = file('private.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    for (const [i, keyFile] of [join(dir, 'no-such.pem'), garbage, priv, '/dev/zero'].entries()) {
      const r = await bothRefuse(runnable(`key-file-${i}.yaml`, [`auth: { jwt: { keyFiles: [${keyFile}] } }`]), 'SIDECAR_CONFIG_INVALID');
      expect(r.validate).toContain('auth.jwt.keyFiles[0]');
      expect(r.validate).toContain(keyFile);
    }
  });

  it('an unknown key with a null value, at any depth', { timeout: 90_000 }, async () => {
    for (const [i, line] of ['nope:', 'auth: { jwt: { secre: null } }', 'upstream: { url: http://127.0.0.1:1, ulr: ~ }'].entries()) {
      const r = await bothRefuse(runnable(`unknown-null-${i}.yaml`, [line]), 'SIDECAR_CONFIG_INVALID');
      expect(r.validate).toContain('unknown key');
    }
  });

  it('files the sidecar loads: a missing policy, an API key file that is a directory, a TLS pair that is not there', { timeout: 90_000 }, async () => {
    mkdirSync(join(dir, 'keys-dir'), { recursive: true });
    await bothRefuse(runnable('policy-missing.yaml', [`policy: { file: ${join(dir, 'no-policy.yaml')} }`]), 'SIDECAR_POLICY_INVALID');
    const keys = await bothRefuse(runnable('apikeys-dir.yaml', [`auth: { apiKeys: { file: ${join(dir, 'keys-dir')} } }`]), 'SIDECAR_API_KEYS_INVALID');
    expect(keys.validate).toContain('auth.apiKeys.file');
    const tls = await bothRefuse(
      runnable('tls-missing.yaml', [`listen: { address: 127.0.0.1:0, tls: { certFile: ${join(dir, 'c.pem')}, keyFile: ${join(dir, 'k.pem')} } }`]),
      'SIDECAR_TLS_INVALID',
    );
    expect(tls.validate).toContain('listen.tls.certFile');
  });

  it('rules the parts check when they are built: CORS, capture without protection, a proxy variable', { timeout: 90_000 }, async () => {
    await bothRefuse(runnable('cors.yaml', ['cors: { allowedOrigins: ["*"], allowCredentials: true }']), 'SIDECAR_CONFIG_INVALID');
    await bothRefuse(
      runnable('capture.yaml', ['egress: { capture: { prompts: true } }', 'protection: { telemetry: { enabled: false } }']),
      'SIDECAR_CONFIG_INVALID',
    );
    const proxy = await bothRefuse(runnable('proxy-env.yaml'), 'SIDECAR_CONFIG_INVALID', { HTTPS_PROXY: 'http://user:hunter2-pw@[bad', https_proxy: '' });
    expect(proxy.validate).toContain('HTTPS_PROXY');
    expect(proxy.validate).not.toContain('hunter2-pw');
  });

  it('validate contacts nothing: no Redis connection, no JWKS fetch', async () => {
    let connections = 0;
    const tcp = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    tcp.listen(0, '127.0.0.1');
    await new Promise((r) => tcp.once('listening', r));
    const { port } = tcp.address() as net.AddressInfo;
    const config = file(
      'offline.yaml',
      [`stores: { redis: { url: "redis://127.0.0.1:${port}" } }`, `auth: { jwt: { jwksUrl: "http://127.0.0.1:${port}/jwks" } }`, ''].join('\n'),
    );
    try {
      const r = await runCli(['validate', '--config', config], { OTEL_SDK_DISABLED: '' });
      expect(r.code, r.stderr).toBe(0);
      expect(connections).toBe(0);
    } finally {
      tcp.close();
    }
  });
});

describe('files: capped, regular, never a hang or a stack trace', () => {
  it('YAML alias bombs, self-referencing aliases and deep nesting in the configuration', { timeout: 90_000 }, async () => {
    // Each level nine times the one before: 9^8 strings if expanded.
    const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
    const bomb = levels.map((n, i) =>
      i === 0
        ? `${n}: &${n} [lol, lol, lol, lol, lol, lol, lol, lol, lol]`
        : `${n}: &${n} [${Array(9)
            .fill(`*${levels[i - 1]}`)
            .join(', ')}]`,
    );
    const cases = {
      bomb: `${bomb.join('\n')}\n`,
      self: 'a: &a [*a]\n',
      selfMap: 'upstream: &u\n  retry: *u\n',
      deepFlow: `upstream: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`,
      deepBlock: `a:\n  ${'- '.repeat(200)}x\n`,
    };
    for (const [name, text] of Object.entries(cases)) {
      const r = await runCli(['validate', '--config', file(`${name}.yaml`, text)]);
      expectFailure(r, 'SIDECAR_CONFIG_PARSE');
      expect(r.ms, name).toBeLessThan(10_000);
    }
  });

  it('a policy of /dev/zero, a FIFO or a huge file is refused at once, naming the key', { timeout: 90_000 }, async () => {
    const fifo = join(dir, 'policy.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const huge = file('huge-policy.yaml', `# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    for (const [i, policy] of ['/dev/zero', fifo, huge, dir].entries()) {
      const r = await runCli(['validate', '--config', file(`policy-${i}.yaml`, `policy: { file: ${policy} }\n`)], {}, { timeoutMs: 10_000 });
      expectFailure(r, 'SIDECAR_POLICY_INVALID');
      expect(r.stderr).toContain('policy.file');
    }
    // The configuration itself, and the other files it names.
    expectFailure(await runCli(['validate', '--config', fifo], {}, { timeoutMs: 10_000 }), 'SIDECAR_CONFIG_UNREADABLE');
    expectFailure(await runCli(['validate', '--config', '/dev/zero'], {}, { timeoutMs: 10_000 }), 'SIDECAR_CONFIG_UNREADABLE');
    expectFailure(
      await runCli(['validate', '--config', file('key-ring.yaml', 'protection: { keys: { file: /dev/urandom } }\n')]),
      'SIDECAR_PROTECTION_KEYS_INVALID',
    );
    expectFailure(
      await runCli(['validate', '--config', file('hash-key.yaml', 'protection: { hashKey: { file: /dev/zero } }\n')]),
      'SIDECAR_PROTECTION_KEYS_INVALID',
    );
  });

  it('inject refuses a device as its input', async () => {
    expectFailure(await runCli(['inject', '-f', '/dev/zero'], {}, { timeoutMs: 10_000 }), 'SIDECAR_INJECT_UNREADABLE');
  });
});

describe('sizes, counts and durations have upper bounds', () => {
  it('refuses absurd values at their key', { timeout: 90_000 }, async () => {
    const cases: Array<[string, string]> = [
      ['limits: { maxHeaderBytes: 99999gb }', 'limits.maxHeaderBytes'],
      ['limits: { maxHeaderBytes: 1.5b }', 'limits.maxHeaderBytes'],
      ['limits: { maxBodyBytes: 99999tb }', 'limits.maxBodyBytes'],
      ['telemetry: { traces: { queueSize: 1e12 } }', 'telemetry.traces.queueSize'],
      ['telemetry: { logs: { batchSize: 2000000 } }', 'telemetry.logs.batchSize'],
      ['auth: { jwt: { cacheSize: 1000000000 } }', 'auth.jwt.cacheSize'],
      ['cors: { maxAge: 30d }', 'cors.maxAge'],
      ['revocation: { subjectTtl: 0.5ms }', 'revocation.subjectTtl'],
      ['rateLimit: { perPrincipal: { requests: 10, per: 0 } }', 'rateLimit.perPrincipal.per'],
      ['egress: { maxRequestBytes: 10gb }', 'egress.maxRequestBytes'],
      ['upstream: { timeouts: { connect: 30d } }', 'upstream.timeouts.connect'],
    ];
    for (const [i, [line, key]] of cases.entries()) {
      const r = await runCli(['validate', '--config', file(`bound-${i}.yaml`, `${line}\n`)]);
      expectFailure(r, 'SIDECAR_CONFIG_INVALID');
      expect(r.stderr, line).toContain(key);
    }
  });

  it('a running sidecar at the largest maxHeaderBytes refuses a bigger head, and the agent never sees it', async () => {
    // The agent takes heads as large as the sidecar lets through, and counts what arrives.
    const seen: number[] = [];
    const upstream = await startServer(
      (req, res) => {
        seen.push(req.headers['x-big']?.length ?? 0);
        res.end('agent');
      },
      { maxHeaderSize: 4 * 1024 * 1024 },
    );
    try {
      const proc = spawnCli(
        ['run', '--config', runnable('head-1mb.yaml', ['limits: { maxHeaderBytes: 1mb }', `upstream: { url: ${upstream.url} }`])],
        CLEAN_ENV,
      );
      running.push(proc);
      const { listen } = await waitForStartup(proc);
      const port = Number(new URL(listen).port);
      const small = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(512 * 1024)}\r\nConnection: close\r\n\r\n`);
      expect(small).toMatch(/^HTTP\/1\.1 200/);
      expect(seen).toEqual([512 * 1024]);
      // The sidecar answers 431 as soon as the head passes 1 MiB; the rest of what the client
      // still sends may reset the connection before it reads the answer.
      const big = await sendTolerant(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(60 * 1024 * 1024)}\r\n\r\n`);
      if (big !== '') expect(big).toMatch(/^HTTP\/1\.1 431[\s\S]*SIDECAR_HEADERS_TOO_LARGE/);
      expect(seen).toEqual([512 * 1024]);
    } finally {
      await upstream.close();
    }
  });
});

/** Writes `text` and returns what came back before the connection ended, reset or not. */
async function sendTolerant(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  socket.on('error', () => {});
  socket.write(text, () => {});
  await Promise.race([new Promise((r) => socket.once('close', r)), new Promise((r) => setTimeout(r, 10_000))]);
  socket.destroy();
  return out;
}

describe('rules between keys are in the schema', () => {
  it('clientRequestTimeout below clientHeadersTimeout: validate and run both refuse it with exit 2', { timeout: 90_000 }, async () => {
    for (const [i, line] of [
      'limits: { clientRequestTimeout: 1s, clientHeadersTimeout: 30s }',
      'limits: { clientRequestTimeout: 29999, clientHeadersTimeout: 30s }',
    ].entries()) {
      const r = await bothRefuse(runnable(`timeouts-${i}.yaml`, [line]), 'SIDECAR_CONFIG_INVALID');
      expect(r.validate).toContain('limits.clientRequestTimeout');
    }
    // 0 disables the request timeout: any headers timeout goes with it.
    expect(
      (await runCli(['validate', '--config', runnable('timeouts-ok.yaml', ['limits: { clientRequestTimeout: 0, clientHeadersTimeout: 30s }'])])).code,
    ).toBe(0);
  });

  it('the others Node.js, undici, grpc-js and proxy-addr would refuse at start', { timeout: 90_000 }, async () => {
    const cases: Array<[string, string]> = [
      ['telemetry: { traces: { queueSize: 10, batchSize: 11 } }', 'telemetry.traces.batchSize'],
      ['upstream: { keepAliveTimeout: 0 }', 'upstream.keepAliveTimeout'],
      ['egress: { keepAliveTimeout: 0 }', 'egress.keepAliveTimeout'],
      ['proxy: { trustedProxies: [not-an-ip] }', 'proxy.trustedProxies'],
      ['telemetry: { enabled: true, traces: { trustIncoming: [10.0.0.0/99] } }', 'telemetry.traces.trustIncoming'],
      ['telemetry: { enabled: true, headers: { "bad key": x } }', 'telemetry.headers'],
      ['stores: { redis: { url: "redis://[::1" } }', 'stores.redis.url'],
      ['proxy: { requestIdHeader: "x request id" }', 'proxy.requestIdHeader'],
      ['listen: { address: 127.0.0.1:18080 }\nadmin: { address: 0.0.0.0:18080 }', 'admin.address'],
    ];
    for (const [i, [lines, key]] of cases.entries()) {
      const r = await bothRefuse(runnable(`cross-${i}.yaml`, lines.split('\n')), 'SIDECAR_CONFIG_INVALID');
      expect(r.validate, lines).toContain(key);
    }
  });
});

describe('the CLI: one line, a stable code, the right exit status', () => {
  it("Commander's usage errors are exit 2 with SIDECAR_USAGE_INVALID and no help dump", { timeout: 90_000 }, async () => {
    for (const args of [
      ['--bogus'],
      ['validate', '--bogus'],
      ['validate', '--config'],
      ['validate', 'extra'],
      ['keys'],
      ['keys', 'frob'],
      ['keys', 'create', '--file'],
      ['keys', 'generate', '--nope'],
      ['revoke', '--bogus'],
      ['redact', '--bogus'],
      ['decrypt', '--bogus'],
      ['token', '--bogus'],
      ['inject', '--bogus'],
      ['version', 'extra'],
      ['valdate', '--config', 'x.yaml'],
    ]) {
      const r = await runCli(args);
      expectFailure(r, 'SIDECAR_USAGE_INVALID');
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toContain('--help');
      expect(r.stdout).toBe('');
    }
  });

  it('--help and --version still exit 0', { timeout: 90_000 }, async () => {
    for (const args of [['--help'], ['-v'], ['--version'], ['validate', '--help'], ['keys', '--help'], ['help']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
    }
  });

  it('keys list and keys revoke on a missing file are an error; create makes it', async () => {
    const keys = join(dir, 'no-keys.yaml');
    expectFailure(await runCli(['keys', 'list', '--file', keys]), 'SIDECAR_API_KEYS_INVALID');
    expectFailure(await runCli(['keys', 'revoke', '--file', keys, '--id', 'abcdefgh']), 'SIDECAR_API_KEYS_INVALID');
    const created = await runCli(['keys', 'create', '--file', keys, '--sub', 'svc']);
    expect(created.code, created.stderr).toBe(0);
    const listed = await runCli(['keys', 'list', '--file', keys]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('svc');
  });

  it('run -- <missing command> says so in words on stderr and exits 127', async () => {
    const r = await runCli(['run', '--config', runnable('agent-missing.yaml'), '--', 'no-such-agent-binary-4f2c', '--flag']);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('agent-sidecar: cannot start the agent: no-such-agent-binary-4f2c: command not found [SIDECAR_AGENT_START_FAILED]');
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('an unexpected error is one line with SIDECAR_INTERNAL and exit 1; its stack only with AGENT_SIDECAR_DEBUG=1', async () => {
    // A preload that makes the version command fail the way a bug would.
    const preload = file('fail-stdout.mjs', "process.stdout.write = () => { throw new TypeError('stdout exploded'); };\n");
    const quiet = await runCli(['version'], {}, { nodeArgs: ['--import', preload] });
    expectFailure(quiet, 'SIDECAR_INTERNAL', 1);
    expect(quiet.stderr).toContain('stdout exploded');
    expect(quiet.stderr.trim().split('\n')).toHaveLength(1);
    const debug = await runCli(['version'], { AGENT_SIDECAR_DEBUG: '1' }, { nodeArgs: ['--import', preload] });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toContain('[SIDECAR_INTERNAL]');
    expect(debug.stderr).toMatch(STACK_FRAME);
  });
});
