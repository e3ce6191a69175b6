import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { validateConfig, type SidecarConfigInput } from '../src/config/index.ts';
import type { SidecarError } from '../src/errors/index.ts';
import { createKeyRing, createProtection, createProtector, type Protector } from '../src/protect/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createTelemetryProtection } from '../src/protect/telemetry.ts';

const key = randomBytes(32);
const ring = createKeyRing(new Map([['k1', key]]), 'k1');
const hashKey = randomBytes(32);

type RuleSetInput = NonNullable<NonNullable<SidecarConfigInput['protection']>['rules']>[string];

function protector(rules: RuleSetInput): Protector {
  const config = validateConfig({ protection: { rules: { default: rules }, keys: { ring: [{ id: 'k1', env: 'UNUSED' }] }, hashKey: { env: 'UNUSED' } } });
  return createProtector(config.protection.rules.default!, { ring: () => ring, hashKey });
}

function configError(input: SidecarConfigInput): string[] {
  try {
    validateConfig(input);
  } catch (err) {
    expect((err as SidecarError).code).toBe('SIDECAR_CONFIG_INVALID');
    return (err as SidecarError).details!.problems as string[];
  }
  throw new Error('expected a configuration error');
}

describe('field rules', () => {
  const p = protector({
    fields: [
      { path: 'password', action: 'redact' },
      { path: 'api_key', action: 'redact' },
      { path: '*.ssn', action: 'hash' },
      { path: 'customer.card.number', action: 'encrypt' },
      { path: 'debug', action: 'drop' },
      { path: 'audit.**.token', action: 'redact' },
    ],
  });

  it('matches a key name at any depth, whatever its case and separators', () => {
    const out = JSON.parse(p.json('{"password":"a","nested":{"Password":"b","list":[{"apiKey":"c"},{"API-KEY":"d"}]}}')!);
    expect(out).toEqual({
      password: '[REDACTED:password]',
      nested: { Password: '[REDACTED:password]', list: [{ apiKey: '[REDACTED:api_key]' }, { 'API-KEY': '[REDACTED:api_key]' }] },
    });
  });

  it('anchors dotted paths at the root: * is one level, ** any number, arrays are transparent', () => {
    const out = JSON.parse(
      p.json('{"ssn":"000-00-0001","person":{"ssn":"x"},"people":[{"ssn":"y"}],"a":{"b":{"ssn":"z"}},"audit":{"x":{"y":{"token":"t"}},"token":"u"}}')!,
    );
    expect(out.ssn).toBe('000-00-0001');
    expect(out.person.ssn).toMatch(/^\[HASH:ssn:[A-Za-z0-9_-]{22}\]$/);
    expect(out.people[0].ssn).toMatch(/^\[HASH:ssn:/);
    expect(out.a.b.ssn).toBe('z');
    expect(out.audit).toEqual({ x: { y: { token: '[REDACTED:token]' } }, token: '[REDACTED:token]' });
  });

  it('hashes equal values alike and different values apart (keyed, so they correlate but do not reverse)', () => {
    const a = JSON.parse(p.json('{"p":{"ssn":"123-45-6789"},"q":{"ssn":"123-45-6789"},"r":{"ssn":"123-45-6780"}}')!);
    expect(a.p.ssn).toBe(a.q.ssn);
    expect(a.p.ssn).not.toBe(a.r.ssn);
    const other = createProtector(
      validateConfig({ protection: { rules: { default: { fields: [{ path: '*.ssn', action: 'hash' }] } }, hashKey: { env: 'X' } } }).protection.rules.default!,
      {
        ring: () => undefined,
        hashKey: randomBytes(32),
      },
    );
    expect(JSON.parse(other.json('{"p":{"ssn":"123-45-6789"}}')!).p.ssn).not.toBe(a.p.ssn);
  });

  it('encrypts a whole value, of any JSON type, into an envelope that decrypts to it', () => {
    const out = JSON.parse(p.json('{"customer":{"card":{"number":4111111111111111,"holder":"Bob"}}}')!);
    expect(out.customer.card.number).toMatch(/^enc:v1:k1:[A-Za-z0-9_-]+$/);
    expect(out.customer.card.holder).toBe('Bob');
    const opened = ring.decrypt(out.customer.card.number);
    expect(opened).toEqual({ type: 'j', plaintext: '4111111111111111' });
  });

  it('drops a key', () => {
    expect(p.json('{"a":1,"debug":{"x":1},"b":2}')).toBe('{"a":1,"b":2}');
  });

  it('returns an untouched document as it came, byte for byte', () => {
    const text = '{ "a" : [1, 2.50, "x"],\n  "b": {"c": null} }';
    expect(p.json(text)).toBe(text);
  });

  it('keeps numbers beyond double precision and __proto__ keys as they were', () => {
    const out = p.json('{"id":12345678901234567890,"password":"x","__proto__":{"admin":true}}')!;
    expect(out).toBe('{"id":12345678901234567890,"password":"[REDACTED:password]","__proto__":{"admin":true}}');
  });

  it('refuses text that is not JSON (undefined) and replaces structures nested deeper than 256 levels', () => {
    expect(p.json('{"a":')).toBeUndefined();
    const deep = `${'['.repeat(300)}"bob@example.com"${']'.repeat(300)}`;
    expect(p.json(deep)).not.toContain('bob@example.com');
  });
});

describe('actions on detected text', () => {
  it('redacts, hashes, encrypts and drops a finding inside a string', () => {
    const text = 'mail bob@example.com now';
    expect(protector({ detectors: { email: 'redact' } }).text(text)).toBe('mail [REDACTED:email] now');
    expect(protector({ detectors: { email: 'hash' } }).text(text)).toMatch(/^mail \[HASH:email:[A-Za-z0-9_-]{22}\] now$/);
    expect(protector({ detectors: { email: 'drop' } }).text(text)).toBe('mail  now');
    const sealed = protector({ detectors: { email: 'encrypt' } }).text(text);
    const envelope = /enc:v1:k1:[A-Za-z0-9_-]+/.exec(sealed)![0];
    expect(ring.decrypt(envelope)).toEqual({ type: 't', plaintext: 'bob@example.com' });
  });

  it('never takes its own output for a finding (an envelope or a hash is not a phone number)', () => {
    const p = protector({ detectors: { email: 'encrypt', phone: 'redact', card: 'redact' } });
    for (let i = 0; i < 200; i++) {
      const out = p.text(`a${i}@example.com`);
      expect(out).toMatch(/^enc:v1:k1:[A-Za-z0-9_-]+$/);
      expect(p.text(out)).toBe(out);
    }
  });

  it('runs custom detectors, with flags', () => {
    const p = protector({ custom: [{ name: 'order_ref', pattern: 'ord-[0-9]{8}', flags: 'i', action: 'redact' }] });
    expect(p.text('see ORD-12345678 and ord-87654321')).toBe('see [REDACTED:order_ref] and [REDACTED:order_ref]');
  });

  it('protects telemetry attributes by key and by value', () => {
    const p = protector({});
    const attrs = { 'url.path': '/users/bob@example.com', 'http.request.header.authorization': 'Basic abc', count: 3, tags: ['ok', 'ghp_' + 'a'.repeat(36)] };
    expect(p.attributes(attrs)).toEqual({
      'url.path': '/users/[REDACTED:email]',
      'http.request.header.authorization': '[REDACTED:authorization]',
      count: 3,
      tags: ['ok', '[REDACTED:github_token]'],
    });
    const clean = { 'http.route': '/api/v1/agents' };
    expect(p.attributes(clean)).toBe(clean);
  });

  it('remembers clean telemetry values, never protected ones: every finding is protected and observed afresh', () => {
    const seen: string[] = [];
    const config = validateConfig({
      protection: { rules: { default: { detectors: { email: 'encrypt' } } }, keys: { ring: [{ id: 'k1', env: 'UNUSED' }] }, hashKey: { env: 'UNUSED' } },
    });
    const p = createProtector(config.protection.rules.default!, { ring: () => ring, hashKey, observe: (label) => seen.push(label) });
    const clean = { 'http.route': '/api/v1/agents', 'user_agent.original': 'curl/8.5' };
    const secret = { 'url.path': '/users/bob@example.com' };
    const envelopes = new Set<string>();
    for (let i = 0; i < 3; i++) {
      expect(p.attributes(clean)).toBe(clean);
      expect(p.recurring('GET /api/v1/agents 200')).toBe('GET /api/v1/agents 200');
      const out = p.attributes(secret)['url.path'] as string;
      expect(out).toMatch(/^\/users\/enc:v1:k1:[A-Za-z0-9_-]+$/);
      envelopes.add(out);
      expect(p.recurring('mail bob@example.com')).toMatch(/^mail enc:v1:k1:/);
    }
    // A fresh envelope (random nonce) each time, and each finding counted.
    expect(envelopes.size).toBe(3);
    expect(seen).toEqual(Array(6).fill('email'));
    // Past its bound the memory forgets the oldest values; verdicts stay the same.
    for (let i = 0; i < 5000; i++) expect(p.recurring(`/api/v1/agents/${i}`)).toBe(`/api/v1/agents/${i}`);
    expect(p.recurring('/api/v1/agents/0')).toBe('/api/v1/agents/0');
    expect(p.recurring('x'.repeat(300) + ' bob@example.com')).toContain('enc:v1:k1:');
  });

  it('passes random UUIDs (the request ids the sidecar makes) without a scan, unless the rule set has custom patterns', () => {
    const seen: string[] = [];
    const uuid = '550e8400-e29b-41d4-a716-446655440000';
    const config = validateConfig({ protection: { rules: { default: { detectors: { phone: 'redact', email: 'redact' } } } } });
    const p = createProtector(config.protection.rules.default!, { ring: () => ring, hashKey, observe: (label) => seen.push(label) });
    for (let i = 0; i < 3; i++) expect(p.recurring(crypto.randomUUID())).toMatch(/^[0-9a-f-]{36}$/);
    expect(p.recurring(uuid)).toBe(uuid);
    expect(seen).toEqual([]);
    // Not the shape of a random UUID: scanned as any other value.
    expect(p.recurring('550e8400-e29b-41d4-a716-bob@example.com')).toContain('[REDACTED:email]');
    const custom = validateConfig({
      protection: { rules: { default: { custom: [{ name: 'ticket', pattern: '[0-9a-f]{8}-[0-9a-f]{4}', action: 'redact' }] } } },
    });
    const q = createProtector(custom.protection.rules.default!, { ring: () => ring, hashKey });
    expect(q.recurring(uuid)).toContain('[REDACTED:ticket]');
  });

  it('protects queued log records once: access records, protected when written, pass export protection as they are', () => {
    const t = createTelemetryProtection(protector({}));
    const base = { timeNs: 0n, severityNumber: 9, severityText: 'INFO', eventName: 'audit', traceId: '', spanId: '', traceFlags: 0 };
    const audit = { ...base, body: 'login bob@example.com', attributes: { user_id: 'bob@example.com' } };
    // Marked as protected when written: export protection leaves it alone, whatever it holds.
    const written = {
      ...base,
      eventName: 'access',
      body: 'GET /users/bob@example.com 200',
      attributes: { user_id: 'bob@example.com' },
      protected: true as const,
    };
    const [a, w] = t.logs([audit, written]);
    expect(a).toMatchObject({ body: 'login [REDACTED:email]', attributes: { user_id: '[REDACTED:email]' } });
    expect(w).toBe(written);
    expect(t.logs([{ ...written, protected: undefined }])[0]).toMatchObject({
      body: 'GET /users/[REDACTED:email] 200',
      attributes: { user_id: '[REDACTED:email]' },
    });
    const lines: Array<Record<string, unknown>> = [];
    const log = t.accessLog({ enabled: () => true, write: (_level, record, message) => lines.push({ ...record, message }) })!;
    log.write('info', { path: '/users/bob@example.com', status_code: 200 }, 'GET /users/bob@example.com 200', '', '', 0);
    // Ids the sidecar made are not scanned: a span id of 16 digits passing Luhn is not a card.
    // The same digits where a client put them are.
    const card = '4111111111111111';
    log.write('info', { request_id: card, trace_id: `0000000000000000${card}`, span_id: card }, 'GET / 200', '', '', 0);
    expect(lines).toEqual([
      { path: '/users/[REDACTED:email]', status_code: 200, message: 'GET /users/[REDACTED:email] 200' },
      { request_id: '[REDACTED:card]', trace_id: `0000000000000000${card}`, span_id: card, message: 'GET / 200' },
    ]);
  });

  it('protects what a log call passes as it will be serialized: URLs, class instances', () => {
    const p = protector({});
    class Account {
      owner = 'bob@example.com';
      plan = 'pro';
    }
    const out = p.value({ url: new URL('https://x.test/users/bob@example.com'), account: new Account(), when: new Date(0) }) as Record<string, unknown>;
    expect(JSON.parse(JSON.stringify(out))).toEqual({
      url: 'https://x.test/users/[REDACTED:email]',
      account: { owner: '[REDACTED:email]', plan: 'pro' },
      when: '1970-01-01T00:00:00.000Z',
    });
  });

  it('offers the egress hook on parsed prompts', async () => {
    const protection = await createProtection(validateConfig({}), createLogger('silent'));
    const prompt = { model: 'm', messages: [{ role: 'user', content: 'my key is AKIAIOSFODNN7EXAMPLE' }] };
    expect(protection.protectPrompt(prompt)).toEqual({ model: 'm', messages: [{ role: 'user', content: 'my key is [REDACTED:aws_access_key]' }] });
    expect(prompt.messages[0]!.content).toBe('my key is AKIAIOSFODNN7EXAMPLE');
  });
});

describe('protection configuration', () => {
  it('checks custom patterns at load, with a clear message', () => {
    const problems = configError({
      protection: {
        rules: {
          default: {
            custom: [
              { name: 'a', pattern: '(?i)secret' },
              { name: 'b', pattern: 'a(' },
              { name: 'c', pattern: 'x*' },
            ],
          },
        },
      },
    });
    expect(problems).toEqual([
      expect.stringMatching(/^protection\.rules\.default\.custom\.0\.pattern: inline flags such as \(\?i\)/),
      expect.stringMatching(/^protection\.rules\.default\.custom\.1\.pattern: not a valid regular expression/),
      expect.stringMatching(/^protection\.rules\.default\.custom\.2\.pattern: the pattern matches the empty string/),
    ]);
  });

  it('names missing rule sets and keys that actions need', () => {
    const problems = configError({
      protection: { routes: [{ path: '/x', rules: 'strict' }], rules: { default: { detectors: { email: 'encrypt', card: 'hash' } } } },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'protection.routes.0.rules: names no rule set of protection.rules; the rule sets are default',
        'protection.keys: a rule encrypts, so keys.ring or keys.file must name at least one key',
        'protection.hashKey: a rule hashes, so hashKey must name a key',
      ]),
    );
    expect(configError({ protection: { keys: { ring: [{ id: 'a:b', env: 'X' }] } } })[0]).toMatch(/^protection\.keys\.ring\.0\.id:/);
    expect(configError({ protection: { keys: { ring: [{ id: 'a', env: 'X', file: 'y' }] } } })[0]).toMatch(/exactly one of env, file or passphraseEnv/);
  });

  it('has a default rule set with the default detectors and fields', () => {
    const c = validateConfig({});
    expect(c.protection.rules.default!.detectors).toMatchObject({ email: 'redact', ip: 'off', secrets: 'redact' });
    expect(c.protection.rules.default!.fields.map((f) => f.path)).toContain('password');
    expect(c.protection.telemetry).toEqual({ enabled: true, rules: 'default' });
  });
});
