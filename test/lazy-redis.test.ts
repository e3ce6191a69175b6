import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const sidecarModule = fileURLToPath(new URL('../src/sidecar.ts', import.meta.url));

/** Whether ioredis is loaded after assembling a sidecar with this configuration, in a fresh process. */
function ioredisLoaded(config: object): boolean {
  const script = `
    import { createRequire } from 'node:module';
    const { assembleSidecar } = await import(${JSON.stringify(sidecarModule)});
    const { validateConfig } = await import(${JSON.stringify(fileURLToPath(new URL('../src/config/index.ts', import.meta.url)))});
    const { createLogger } = await import(${JSON.stringify(fileURLToPath(new URL('../src/log/index.ts', import.meta.url)))});
    const sidecar = await assembleSidecar(validateConfig(${JSON.stringify(config)}), createLogger('error'));
    const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/ioredis/'));
    process.stdout.write(String(loaded));
    process.exit(0);
  `;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  if (out.status !== 0) throw new Error(out.stderr);
  return out.stdout.trim() === 'true';
}

describe('ioredis is loaded only when Redis is configured', () => {
  // Loading it defines a String subclass, after which V8 runs charCodeAt loops several times slower.
  it('not with the in-memory stores', () => {
    expect(ioredisLoaded({ telemetry: { enabled: false } })).toBe(false);
  });

  it('with stores.redis', () => {
    expect(ioredisLoaded({ telemetry: { enabled: false }, stores: { redis: { url: 'redis://127.0.0.1:1' } } })).toBe(true);
  });
});
