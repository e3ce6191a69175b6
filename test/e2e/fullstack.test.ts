/**
 * The whole pipeline on the real programs, on loopback: client -> sidecar (rate limits and
 * revocations in Redis) -> demo agent, and its MCP server on an MCP route; the agent's own MCP
 * calls -> the sidecar's egress listener -> the same MCP server;
 * sidecar -OTLP-> the built collector (collector/otelcol.yaml + the dev profile) ->
 * Prometheus (scraping its exporter), Elasticsearch (agent-logs-YYYY.MM.DD) and Jaeger v2.
 * Known traffic goes through, then each backend is asked, as a user would ask it, whether it
 * shows exactly that traffic. Last, Elasticsearch goes down for a minute under traffic (and
 * the collector is killed and restarted meanwhile): every log record must still arrive.
 *
 * npm run test:e2e builds the programs first (npm run stack:build). KEEP_E2E_DIR=1 keeps the
 * run directory with every program's configuration and output.
 */
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../../bench/lib/net.ts';
import { stopAll } from '../../bench/lib/procs.ts';
import { locateStack, type Stack } from '../../scripts/stack/build.ts';
import { egressSeries, sidecarSeries } from '../metric-names.ts';
import { startRedis, type RedisServer } from '../redis-server.ts';
import { REPO } from '../../scripts/stack/cache.ts';
import { esRequest, esSearch, eventually, jaegerTrace, promQuery, promRules, promSumBy, tag, type Doc, type JaegerSpan, type JaegerTrace } from './queries.ts';
import {
  startCollector,
  startDemoAgent,
  startElasticsearch,
  startJaeger,
  startPrometheus,
  startTelemetrySidecar,
  type Collector,
  type Elasticsearch,
  type Jaeger,
  saveStderr,
  stablePort,
  type Prometheus,
  type SidecarUnderTest,
} from './services.ts';
import { anthropicLimits, anthropicStream, startFakeProvider, type FakeProvider } from '../fake-provider.ts';
import { CLEAN_RUN_ENV, spawnCli, waitForStartup } from '../helpers.ts';
import { ensurePythonOtel, PYTHON_FIXTURES } from '../python-otel.ts';
import {
  egressMcpPlan,
  expectedMetrics,
  JWT_SECRET,
  LLM,
  MCP,
  plan,
  PLANTED,
  policyWithMcp,
  rpcAnswer,
  send,
  sidecarConfig,
  type Answer,
  type Planned,
} from './traffic.ts';

const RUN = `e2e${Date.now().toString(36)}`;
const ZERO_CODE_AGENT = fileURLToPath(new URL('../fixtures/zero-code-agent.mjs', import.meta.url));
const INDEX = 'agent-logs-*';
/** How long a backend may take to show what was sent (exports every 0.2-1 s, scrapes every 1 s). */
const SHOW_MS = 60_000;
const OUTAGE_MS = 60_000;

const timings: Array<[string, number]> = [];
async function phase<T>(name: string, work: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await work();
  } finally {
    timings.push([name, Date.now() - t0]);
  }
}

let dir: string;
let stack: Stack;
let es: Elasticsearch;
let jaeger: Jaeger;
let collector: Collector;
let prometheus: Prometheus;
let agent: Awaited<ReturnType<typeof startDemoAgent>>;
let sidecar: SidecarUnderTest;
let redis: RedisServer;
let provider: FakeProvider;
let egressUrl: string;
const requests = plan(RUN);
const egressMcp = egressMcpPlan(RUN);
const answers = new Map<string, Answer>();

/** The index template as shipped, less the lifecycle setting: the test distribution has no ILM. */
function templateWithoutLifecycle(): object {
  const template = JSON.parse(readFileSync(join(REPO, 'config', 'elasticsearch', 'agent-logs.template.json'), 'utf8')) as {
    template: { settings: Record<string, unknown> };
  };
  delete template.template.settings['index.lifecycle.name'];
  return template;
}

async function accessRecords(ids: readonly string[]): Promise<Doc[]> {
  return esSearch(es.url, INDEX, { bool: { filter: [{ term: { event_type: 'access' } }, { terms: { request_id: ids } }] } });
}

beforeAll(async () => {
  stack = locateStack();
  dir = mkdtempSync(join(tmpdir(), 'agent-sidecar-e2e-'));
  chmodSync(dir, 0o755); // Elasticsearch runs as an unprivileged user when the test runs as root
  await phase('start Elasticsearch, Jaeger', async () => {
    [es, jaeger] = await Promise.all([startElasticsearch(stack, join(dir, 'elasticsearch')), startJaeger(stack, join(dir, 'jaeger'))]);
  });
  await esRequest(es.url, 'PUT', '/_index_template/agent-logs', templateWithoutLifecycle());
  await phase('start collector, Prometheus, agent, sidecar', async () => {
    collector = await startCollector(stack, join(dir, 'collector'), { profile: 'dev', elasticsearch: es.url, jaegerOtlp: jaeger.otlpEndpoint });
    redis = await startRedis();
    provider = await startFakeProvider();
    egressUrl = `http://127.0.0.1:${await stablePort()}`;
    agent = await startDemoAgent(join(dir, 'agent'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, policyWithMcp(readFileSync(join(REPO, 'config', 'demo-policy.yaml'), 'utf8')));
    sidecar = await startTelemetrySidecar(join(dir, 'sidecar'), agent, {
      collector: collector.otlpEndpoint,
      extraConfig: sidecarConfig(policy, redis.url, { address: new URL(egressUrl).host, provider: provider.url, mcpServer: new URL(agent.url).origin }),
      env: { ...process.env, JWT_SECRET },
    });
    prometheus = await startPrometheus(stack, join(dir, 'prometheus'), {
      'otel-collector': collector.exporterTarget,
      'otel-collector-internal': collector.telemetryTarget,
      'agent-sidecar': new URL(sidecar.adminUrl).host,
    });
  });
  await phase('send the planned traffic', async () => {
    let agentUp = true;
    for (const p of requests) {
      if (p.agentDown === agentUp) {
        await (agentUp ? agent.stop() : agent.start());
        agentUp = !agentUp;
      }
      answers.set(p.id, await send(sidecar.url, p));
    }
    if (!agentUp) await agent.start();
    for (const p of egressMcp) answers.set(p.id, await send(egressUrl, p));
  });
}, 600_000);

afterAll(async () => {
  const services = { elasticsearch: es, jaeger, collector, prometheus, agent, sidecar };
  for (const [name, service] of Object.entries(services)) if (service !== undefined) saveStderr(service.child, join(dir, name));
  await stopAll();
  await redis?.close();
  await provider?.close();
  const report = timings.map(([name, ms]) => `  ${name.padEnd(58)} ${(ms / 1000).toFixed(1).padStart(6)} s`).join('\n');
  process.stdout.write(`\nfull-stack timings (${RUN}):\n${report}\n`);
  if (dir !== undefined && process.env.KEEP_E2E_DIR === undefined) rmSync(dir, { recursive: true, force: true });
  else if (dir !== undefined) process.stdout.write(`run directory kept: ${dir}\n`);
}, 120_000);

describe('the full stack on real binaries', () => {
  it('the sidecar answered the planned traffic as planned', () => {
    const sent = [...requests, ...egressMcp];
    expect(Object.fromEntries(sent.map((p) => [p.id, answers.get(p.id)?.status]))).toEqual(Object.fromEntries(sent.map((p) => [p.id, p.status])));
  });

  it('MCP, on the route and through egress: each caller lists only its tool, calls it, and the other tool is refused with its code', () => {
    for (const messages of [requests.filter((p) => p.rpc !== undefined), egressMcp]) {
      expect(messages.map((p) => [p.rpc!.method, rpcAnswer(answers.get(p.id)!).error])).toEqual(messages.map((p) => [p.rpc!.method, p.errorType]));
      const list = messages.find((p) => p.rpc!.method === 'tools/list')!;
      const { tools } = rpcAnswer(answers.get(list.id)!).result as { tools: Array<{ name: string }> };
      expect(tools.map((t) => t.name)).toEqual([MCP.allowed]);
    }
  });

  it('Prometheus, scraping the collector, has the request metrics with their labels and values', async () => {
    const want = expectedMetrics(requests);
    const job = '{job="support-agent"}';
    await phase('Prometheus shows the traffic', () =>
      eventually('agent_requests_total in Prometheus', SHOW_MS, async () => {
        const got: Record<string, number> = {};
        for (const s of await promQuery(prometheus.url, `sum by (endpoint, status) (agent_requests_total${job})`))
          got[`${s.metric.endpoint} ${s.metric.status}`] = s.value;
        expect(got).toEqual(want.requestsBy);
      }),
    );
    expect(await promSumBy(prometheus.url, 'error_type', `agent_errors_total${job}`)).toEqual(want.errorsBy);
    expect(await promSumBy(prometheus.url, 'endpoint', `agent_rate_limited_total${job}`)).toEqual(want.rateLimitedBy);
    expect(await promSumBy(prometheus.url, 'http_response_status_code', `http_server_request_duration_seconds_count${job}`)).toEqual(want.statusBy);
    expect(await promSumBy(prometheus.url, 'reason', 'agent_auth_attempts_total{job="support-agent",outcome="failure"}')).toEqual(want.authFailuresBy);
    expect(await promSumBy(prometheus.url, 'outcome', 'agent_auth_attempts_total{job="support-agent",outcome="success"}')).toEqual({
      success: want.authSuccesses,
    });
    // The reference histogram: every request in a bucket, labelled by agent type and endpoint.
    const counts = await promQuery(prometheus.url, `agent_request_duration_seconds_bucket{job="support-agent",le="+Inf"}`);
    expect(counts.reduce((n, s) => n + s.value, 0)).toBe(requests.length);
    expect(new Set(counts.map((s) => s.metric.agent_type))).toEqual(new Set(['support-agent']));
    // Every token checked against the revocations in Redis, and Redis answered each time.
    expect(await promSumBy(prometheus.url, 'result', 'agent_revocation_checks_total{job="support-agent"}')).toEqual({ valid: want.authSuccesses });
    expect(await promSumBy(prometheus.url, 'cache_type', 'cache_hits_total{job="support-agent"}')).toEqual({ token: want.tokenCache.hits });
    expect(await promSumBy(prometheus.url, 'cache_type', 'cache_misses_total{job="support-agent"}')).toEqual({ token: want.tokenCache.misses });
    // Every metric the sidecar emits arrives under the name dashboards and rules use for it
    // (test/metric-names.ts derives them), the MCP ones of the route and of egress included
    // (egress was called last, so wait for it); only drops are absent while nothing was dropped.
    const absent = new Set(['telemetryDropped']);
    const expected = [...sidecarSeries()].filter(([key]) => !absent.has(key)).flatMap(([, names]) => names);
    await eventually('every sidecar metric in Prometheus', SHOW_MS, async () => {
      const present = await promQuery(prometheus.url, `count by (__name__) ({job="support-agent",__name__=~"${expected.join('|')}"})`);
      expect(present.map((s) => s.metric.__name__).sort()).toEqual(expected.sort());
    });
    const info = await promQuery(prometheus.url, 'agent_system_info');
    expect(info.map((s) => [s.metric.agent_type, s.metric.environment])).toEqual([['support-agent', 'e2e']]);
  });

  it('Prometheus loads the shipped alert rules and scrapes the sidecar and the collector', async () => {
    const rules = await eventually('every rule evaluated', SHOW_MS, async () => {
      const all = await promRules(prometheus.url);
      expect(all.filter((r) => r.lastEvaluation.startsWith('0001'))).toEqual([]);
      return all;
    });
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    expect(rules.filter((r) => r.type === 'alerting').length).toBeGreaterThanOrEqual(12);
    await eventually('every target scraped', SHOW_MS, async () => {
      const up = await promQuery(prometheus.url, 'up');
      expect(Object.fromEntries(up.map((s) => [s.metric.job, s.value]))).toEqual({ 'otel-collector': 1, 'otel-collector-internal': 1, 'agent-sidecar': 1 });
    });
    // The collector metrics that CollectorQueueFilling divides exist under these names.
    const names = await promQuery(prometheus.url, 'count by (__name__) ({__name__=~"otelcol_exporter_queue_size|otelcol_exporter_queue_capacity"})');
    expect(names.map((s) => s.metric.__name__).sort()).toEqual(['otelcol_exporter_queue_capacity', 'otelcol_exporter_queue_size']);
  });

  it('Elasticsearch has an access record per request and the audit events, with the reference field names', async () => {
    const docs = await phase('Elasticsearch shows the traffic', () =>
      eventually('access records in Elasticsearch', SHOW_MS, async () => {
        const found = await accessRecords(requests.map((p) => p.id));
        expect(found.length).toBe(requests.length);
        return found;
      }),
    );
    const byId = new Map(docs.map((d) => [d.request_id as string, d]));
    for (const p of requests) {
      const d = byId.get(p.id)!;
      expect(d, p.id).toMatchObject({ method: p.method, route: p.endpoint, status_code: p.status, agent_type: 'support-agent', event_type: 'access' });
      expect(d.level).toBe(p.status >= 500 ? 'ERROR' : p.status >= 400 ? 'WARN' : 'INFO');
      expect(d.message).toBe(`${p.method} ${d.path as string} ${p.status}`);
      expect(typeof d.duration_ms).toBe('number');
      expect(d['@timestamp']).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(d.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(d.error_type).toBe(p.errorType);
      expect(d.user_id).toBe(p.role === undefined ? undefined : `e2e-${p.role}`);
      if (p.status >= 500) expect(d.tags).toEqual(['error']);
    }
    // Audit: a failed authentication per anonymous request, a denial per 403, tagged audit.
    const audit = await esSearch(es.url, INDEX, { terms: { request_id: requests.map((p) => p.id) } });
    const failures = audit.filter((d) => d.event_type === 'authentication' && d.success === false);
    expect(failures.map((d) => d.request_id).sort()).toEqual(
      requests
        .filter((p) => p.role === undefined)
        .map((p) => p.id)
        .sort(),
    );
    for (const d of failures) expect(d).toMatchObject({ tags: ['audit'], ip_address: '127.0.0.1', reason: 'SIDECAR_CREDENTIALS_MISSING', level: 'INFO' });
    const denials = audit.filter((d) => d.event_type === 'authorization' && d.allowed === false);
    expect(denials.map((d) => d.request_id).sort()).toEqual(
      requests
        .filter((p) => p.status === 403 || p.errorType === 'SIDECAR_TOOL_FORBIDDEN')
        .map((p) => p.id)
        .sort(),
    );
    expect(denials[0]).toMatchObject({ action: 'view:agent', user_id: 'e2e-user', tags: ['audit'] });
    expect(denials.find((d) => d.mcp_name !== undefined)).toMatchObject({
      mcp_method: 'tools/call',
      mcp_name: MCP.refused,
      action: 'manage:documents',
      reason: 'SIDECAR_TOOL_FORBIDDEN',
      user_id: `e2e-${MCP.role}`,
    });
    // Daily indices, mapped by the shipped template.
    const mapping = await esRequest<Record<string, { mappings: { properties: Record<string, { type: string }> } }>>(es.url, 'GET', `/${INDEX}/_mapping`);
    const [index, { mappings }] = Object.entries(mapping)[0]!;
    expect(index).toMatch(/^agent-logs-\d{4}\.\d\d\.\d\d$/);
    const types = Object.fromEntries(
      ['@timestamp', 'level', 'message', 'ip_address', 'duration_ms', 'request_id', 'event_type', 'user_id'].map((f) => [f, mappings.properties[f]?.type]),
    );
    expect(types).toEqual({
      '@timestamp': 'date',
      level: 'keyword',
      message: 'text',
      ip_address: 'ip',
      duration_ms: 'float',
      request_id: 'keyword',
      event_type: 'keyword',
      user_id: 'keyword',
    });
  });

  it('Jaeger has the traces, the server span with the client span to the agent under it', async () => {
    const [first] = await accessRecords([requests[0]!.id]);
    const trace = await phase('Jaeger shows the trace', () =>
      eventually('the trace in Jaeger', SHOW_MS, () => jaegerTrace(jaeger.queryUrl, first!.trace_id as string)),
    );
    const kind = (k: string) => trace.spans.filter((s) => tag(s, 'span.kind') === k);
    const [server] = kind('server');
    const [client] = kind('client');
    expect(server?.operationName).toBe('GET /api/v1/agents');
    expect(tag(server!, 'http.response.status_code')).toBe(200);
    expect(client?.references).toEqual([expect.objectContaining({ refType: 'CHILD_OF', spanID: server!.spanID })]);
    expect(tag(client!, 'url.full')).toBe(`${agent.url}api/v1/agents`);
    expect(trace.processes[server!.processID]?.serviceName).toBe('support-agent');
    // A streamed answer is one server span too, ended when the stream ended.
    const chat = requests.find((p) => p.endpoint === '/api/v1/chat')!;
    const [chatRecord] = await accessRecords([chat.id]);
    const chatTrace = await eventually('the chat trace in Jaeger', SHOW_MS, () => jaegerTrace(jaeger.queryUrl, chatRecord!.trace_id as string));
    expect(chatTrace.spans.map((s) => s.operationName).sort()).toEqual(['POST', 'POST /api/v1/chat']);
  });

  it('MCP: tool calls by decision and message durations in Prometheus, both sides; the tools/call spans in Jaeger', async () => {
    const byTool = (query: string, labels: string[]) =>
      promQuery(prometheus.url, `sum by (${labels.join(', ')}) (${query})`).then((samples) =>
        Object.fromEntries(samples.map((x) => [labels.map((l) => x.metric[l]).join(' '), x.value])),
      );
    await phase('Prometheus shows the MCP tool calls', () =>
      eventually('agent_tool_calls_total and agent_egress_tool_calls_total in Prometheus', SHOW_MS, async () => {
        expect(await byTool('agent_tool_calls_total{job="support-agent"}', ['tool', 'decision', 'role'])).toEqual({
          [`${MCP.allowed} allowed ${MCP.role}`]: 1,
          [`${MCP.refused} refused ${MCP.role}`]: 1,
        });
        expect(await byTool('agent_egress_tool_calls_total{job="support-agent"}', ['server', 'tool', 'decision'])).toEqual({
          [`${MCP.server} ${MCP.allowed} allowed`]: 1,
          [`${MCP.server} ${MCP.refused} refused`]: 1,
        });
      }),
    );
    // A duration per message, both sides: the session's five messages each.
    const perMethod = { initialize: 1, 'notifications/initialized': 1, 'tools/list': 1, 'tools/call': 2 };
    expect(await promSumBy(prometheus.url, 'mcp_method_name', 'mcp_server_operation_duration_seconds_count{job="support-agent"}')).toEqual(perMethod);
    expect(await promSumBy(prometheus.url, 'mcp_method_name', 'mcp_client_operation_duration_seconds_count{job="support-agent"}')).toEqual(perMethod);

    // On the route: the tools/call SERVER span under the request's HTTP SERVER span.
    const mcpCall = (planned: readonly Planned[], name: string) => planned.find((p) => p.rpc?.method === 'tools/call' && p.rpc.params?.name === name)!;
    const spansOf = async (p: Planned, names: string[]) => {
      const [record] = await accessRecords([p.id]);
      return eventually(`${names.join(', ')} in Jaeger`, SHOW_MS, async () => {
        const trace = await jaegerTrace(jaeger.queryUrl, record!.trace_id as string);
        const found = names.map((n) => trace.spans.find((s) => s.operationName === n));
        if (found.includes(undefined)) throw new Error(`the trace has ${trace.spans.map((s) => s.operationName).join(', ')}`);
        return found as JaegerSpan[];
      });
    };
    const [http, call] = await phase('Jaeger shows the MCP spans', () =>
      spansOf(mcpCall(requests, MCP.allowed), [`POST ${MCP.route}`, `tools/call ${MCP.allowed}`]),
    );
    expect([tag(http!, 'span.kind'), tag(call!, 'span.kind')]).toEqual(['server', 'server']);
    expect(call!.references).toEqual([expect.objectContaining({ refType: 'CHILD_OF', spanID: http!.spanID })]);
    expect([tag(call!, 'mcp.method.name'), tag(call!, 'gen_ai.tool.name'), tag(call!, 'mcp.protocol.version')]).toEqual([
      'tools/call',
      MCP.allowed,
      MCP.version,
    ]);
    expect(tag(call!, 'error.type')).toBeUndefined();
    const [refused] = await spansOf(mcpCall(requests, MCP.refused), [`tools/call ${MCP.refused}`]);
    expect([tag(refused!, 'span.kind'), tag(refused!, 'error.type'), tag(refused!, 'otel.status_description')]).toEqual([
      'server',
      '-32602',
      'SIDECAR_TOOL_FORBIDDEN',
    ]);
    // Through egress: a CLIENT span of the same name, to the agent's MCP server (a trace of its own: the agent sent no traceparent).
    const egress = await eventually('the egress tools/call span in Jaeger', SHOW_MS, async () => {
      const operation = encodeURIComponent(`tools/call ${MCP.allowed}`);
      const body = (await (await fetch(`${jaeger.queryUrl}/api/traces?service=support-agent&operation=${operation}&lookback=1h&limit=20`)).json()) as {
        data: JaegerTrace[];
      };
      const span = body.data.flatMap((t) => t.spans).find((x) => x.operationName === `tools/call ${MCP.allowed}` && tag(x, 'span.kind') === 'client');
      if (span === undefined) throw new Error('no egress tools/call span yet');
      return span;
    });
    expect([tag(egress, 'server.address'), tag(egress, 'server.port'), tag(egress, 'gen_ai.tool.name')]).toEqual([
      '127.0.0.1',
      Number(new URL(agent.url).port),
      MCP.allowed,
    ]);
    expect(egress.references).toEqual([]);
  });

  it('the collector masks the planted e-mail address and API key in logs and traces', async () => {
    const planted = requests.find((p) => p.path.includes(PLANTED.email))!;
    const records = await esSearch(es.url, INDEX, { term: { request_id: planted.id } });
    const access = records.find((d) => d.event_type === 'access')!;
    const authn = records.find((d) => d.event_type === 'authentication')!;
    expect(access.path).toBe('/api/v1/agents/****');
    expect(access.message).toBe('GET /api/v1/agents/**** 401');
    expect(authn.user_agent).toBe('e2e-probe ****');
    expect(authn['redaction.masked.count']).toBe(1);
    const trace = await eventually('the planted trace in Jaeger', SHOW_MS, () => jaegerTrace(jaeger.queryUrl, access.trace_id as string));
    const server = trace.spans.find((s) => tag(s, 'span.kind') === 'server')!;
    expect([tag(server, 'url.path'), tag(server, 'user_agent.original')]).toEqual(['/api/v1/agents/****', 'e2e-probe ****']);
    // Nowhere in clear: not in any document of the index, not in the trace.
    const everything = JSON.stringify(await esSearch(es.url, INDEX, { match_all: {} })) + JSON.stringify(trace);
    expect(everything).not.toContain(PLANTED.email);
    expect(everything).not.toContain(PLANTED.apiKey);
    expect(everything).not.toContain(PLANTED.apiKey.slice(14, 40));
  });

  it('a streamed LLM call through egress: tokens, cost, quota and budget in Prometheus, the quota alert pending, the CLIENT span in Jaeger', async () => {
    const u = LLM.usage;
    const limits = anthropicLimits({ requests: [1000, 999], tokens: [LLM.tokenLimit, LLM.tokensRemaining], input: [80_000, 20_000], output: [20_000, 10_000] });
    provider.next({
      events: anthropicStream({ model: LLM.model, input: u.input, cacheRead: u.cacheRead, cacheWrite: u.cacheWrite, outputs: u.outputs }),
      headers: limits,
    });
    const res = await fetch(`${egressUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'e2e-key', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: LLM.model, max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('message_stop');
    const output = u.outputs.at(-1)!;
    const tokens = { input: u.input, cache_read: u.cacheRead, cache_creation: u.cacheWrite, output };
    await phase('Prometheus shows the LLM call', () =>
      eventually('llm_tokens_total in Prometheus', SHOW_MS, async () => {
        expect(await promSumBy(prometheus.url, 'token_type', `llm_tokens_total{job="support-agent",provider="anthropic",model="${LLM.model}"}`)).toEqual(
          tokens,
        );
      }),
    );
    expect(await promSumBy(prometheus.url, 'token_type', `anthropic_tokens_total{job="support-agent",model="${LLM.model}"}`)).toEqual(tokens);
    const p = LLM.prices;
    const usd = (u.input * p.input + output * p.output + u.cacheRead * p.cacheRead + u.cacheWrite * p.cacheWrite) / 1e6;
    const [cost] = await promQuery(prometheus.url, `sum(llm_api_cost_usd_total{job="support-agent",model="${LLM.model}"})`);
    expect(cost!.value).toBeCloseTo(usd, 12);
    const [anthropicCost] = await promQuery(prometheus.url, `sum(anthropic_api_cost_total{job="support-agent",model="${LLM.model}"})`);
    expect(anthropicCost!.value).toBeCloseTo(usd, 12);
    const quota = await promQuery(prometheus.url, `llm_quota_utilization_ratio{job="support-agent",limit_type="tokens"}`);
    expect(quota.map((q) => [q.metric.provider, q.metric.model, q.value])).toEqual([['anthropic', LLM.model, 1 - LLM.tokensRemaining / LLM.tokenLimit]]);
    const [budget] = await promQuery(prometheus.url, 'llm_budget_utilization_ratio{job="support-agent",window="day"}');
    expect(budget!.value).toBeCloseTo(usd / LLM.budgetUsd, 12);
    // Every egress metric a successful call makes, under the names dashboards and rules use.
    const absent = new Set(['rateLimited', 'retryAfter', 'budgetRefused', 'budgetSoftLimit']);
    const expected = [...egressSeries()].filter(([key]) => !absent.has(key)).flatMap(([, names]) => names);
    const present = await promQuery(prometheus.url, `count by (__name__) ({job="support-agent",__name__=~"${expected.join('|')}"})`);
    expect(present.map((x) => x.metric.__name__).sort()).toEqual(expected.sort());
    // 85% of the token quota: the shipped LLMQuotaHigh rule takes it up (pending for its 2 minutes).
    await eventually('LLMQuotaHigh pending', SHOW_MS, async () => {
      const alerts = await promQuery(prometheus.url, 'ALERTS{alertname="LLMQuotaHigh"}');
      expect(alerts.map((a) => [a.metric.alertstate, a.metric.limit_type, a.metric.severity])).toEqual([['pending', 'tokens', 'critical']]);
    });
    const found = await eventually('the LLM span in Jaeger', SHOW_MS, async () => {
      const body = (await (
        await fetch(`${jaeger.queryUrl}/api/traces?service=support-agent&operation=${encodeURIComponent(`chat ${LLM.model}`)}&lookback=1h&limit=5`)
      ).json()) as { data: JaegerTrace[] };
      const span = body.data.flatMap((t) => t.spans).find((x) => x.operationName === `chat ${LLM.model}`);
      if (span === undefined) throw new Error('no LLM span yet');
      return span;
    });
    expect([tag(found, 'span.kind'), tag(found, 'gen_ai.provider.name'), tag(found, 'gen_ai.usage.output_tokens')]).toEqual(['client', 'anthropic', output]);
    expect(tag(found, 'gen_ai.usage.input_tokens')).toBe(u.input + u.cacheRead + u.cacheWrite);
  });

  const zeroCodeAgents = [
    {
      runtime: 'Node.js (auto-instrumentations-node)',
      command: () => [process.execPath, ZERO_CODE_AGENT],
      env: () => ({}),
      ready: '"zeroCode"',
      scope: /^@opentelemetry\/instrumentation-/,
      planted: 'kim@example.com',
    },
    {
      runtime: 'Python (opentelemetry-instrument from PyPI)',
      command: () => ['python3', join(PYTHON_FIXTURES, 'agent.py')],
      env: () => ({ PATH: `${ensurePythonOtel()}${delimiter}${process.env.PATH ?? ''}` }),
      ready: '"pythonAgent"',
      scope: /^opentelemetry\.instrumentation\./,
      planted: 'lee@example.com',
    },
  ];

  it.each(zeroCodeAgents)(
    'zero-code under run --, $runtime: Jaeger has one trace across the sidecar, the auto-instrumented agent and its LLM call through egress',
    async (agent) => {
      // Its own provider, so that no answer queued by another test is taken.
      const own = await startFakeProvider();
      const config = join(dir, `zero-code-${agent.ready.replace(/\W/g, '')}.yaml`);
      writeFileSync(
        config,
        [
          'listen: { address: 127.0.0.1:0 }',
          'admin: { address: 127.0.0.1:0 }',
          'egress:',
          '  address: 127.0.0.1:0',
          '  allowHttp: true',
          `  providers: { anthropic: { origin: "${own.url}" } }`,
          'telemetry:',
          `  endpoint: ${collector.otlpEndpoint}`,
          '  serviceName: zero-code-e2e',
          '  traces: { scheduledDelay: 200ms }',
          '  metrics: { otlp: false }',
          '  logs: { otlp: false }',
        ].join('\n'),
      );
      own.next({
        json: {
          id: 'msg_e2e',
          type: 'message',
          role: 'assistant',
          model: 'claude-sonnet-4-6',
          content: [{ type: 'text', text: 'e2e' }],
          stop_reason: 'end_turn',
          usage: { input_tokens: 3, output_tokens: 1 },
        },
      });
      const proc = spawnCli(['run', '--config', config, '--agent-port', String(await stablePort()), '--', ...agent.command()], {
        ...CLEAN_RUN_ENV,
        ...agent.env(),
        ANTHROPIC_API_KEY: 'sk-ant-e2e',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
        OTEL_BSP_SCHEDULE_DELAY: '200',
      });
      try {
        const { listen } = await waitForStartup(proc);
        await eventually('the agent under run --', SHOW_MS, async () => {
          if (!proc.stdout().includes(agent.ready)) throw new Error('not up yet');
        });
        const res = await fetch(`${listen}/ask`);
        expect(res.status).toBe(200);
        const [, traceId = '', egressSpanId = ''] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(own.seen.at(-1)?.headers.traceparent)) ?? [];
        expect(traceId).not.toBe('');
        const byId = (t: JaegerTrace, id: string) => t.spans.find((x) => x.spanID === id);
        const chainOf = (t: JaegerTrace) => {
          const chain: JaegerSpan[] = [];
          for (let x = byId(t, egressSpanId); x !== undefined; x = x.references.length === 0 ? undefined : byId(t, x.references[0]!.spanID)) chain.push(x);
          return chain;
        };
        // Whole once the egress span's ancestors reach a root: the agent's spans come through the relay.
        const trace = await phase('Jaeger shows the zero-code trace', () =>
          eventually('the whole zero-code trace in Jaeger', SHOW_MS, async () => {
            const t = await jaegerTrace(jaeger.queryUrl, traceId);
            const chain = chainOf(t);
            if (chain.length === 0 || chain.at(-1)!.references.length > 0) throw new Error(`${chain.length} spans of the chain so far`);
            return t;
          }),
        );
        const chain = chainOf(trace);
        const scope = (x: JaegerSpan) => String(tag(x, 'otel.scope.name') ?? tag(x, 'otel.library.name') ?? '');
        expect(chain[0]!.operationName).toBe('chat claude-sonnet-4-6');
        expect(scope(chain[0]!)).toBe('agent-sidecar');
        const agentSpans = chain.filter((x) => agent.scope.test(scope(x)));
        expect(agentSpans.map((x) => tag(x, 'span.kind'))).toEqual(['client', 'server']);
        expect(chain[1]).toBe(agentSpans[0]);
        expect(tag(agentSpans[1]!, 'customer.email')).toBe('[REDACTED:email]');
        const root = chain.at(-1)!;
        expect(scope(root)).toBe('agent-sidecar');
        expect(tag(root, 'span.kind')).toBe('server');
        expect(trace.processes[root.processID]?.serviceName).toBe('zero-code-e2e');
        expect(JSON.stringify(trace)).not.toContain(agent.planted);
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
        await own.close();
      }
    },
  );

  it('Elasticsearch down for a minute under traffic, the collector killed and restarted meanwhile: no log record lost', async () => {
    const outage: Planned[] = Array.from({ length: 60 }, (_, i) => ({
      id: `${RUN}-outage-${i + 1}`,
      method: 'GET',
      path: '/api/v1/agents',
      role: 'analyst',
      status: 200,
      endpoint: '/api/v1/agents',
    }));
    const half = outage.length / 2;
    const started = Date.now();
    await phase('Elasticsearch stopped', () => es.stop(30_000));
    await phase('traffic during the outage, collector killed halfway', async () => {
      for (const [i, p] of outage.entries()) {
        if (i === half) {
          // Let the sidecar hand over what it has, then kill the collector: what it queued
          // must come back from file_storage, not from memory.
          await eventually('the collector has queued the first half', 20_000, async () => {
            const accepted = await promQuery(prometheus.url, 'sum(otelcol_receiver_accepted_log_records)');
            expect(accepted[0]?.value ?? 0).toBeGreaterThan(0);
            const queued = await promQuery(prometheus.url, 'sum(otelcol_exporter_queue_size{exporter="elasticsearch"})');
            expect(queued[0]?.value ?? 0).toBeGreaterThan(0);
          });
          // Killed, not stopped: with its backend down a collector's graceful shutdown waits
          // for the exporter's retries, and orchestrators kill it after their grace period.
          await collector.stop(0);
          expect(readdirSync(collector.storageDir).some((f) => f.startsWith('exporter_elasticsearch'))).toBe(true);
          await collector.start();
          // The sidecar drops what it cannot export while its gRPC channel reconnects (by
          // design: it never queues for long); traffic resumes once its exports get through.
          const before = await promQuery(prometheus.url, 'sum(otelcol_receiver_accepted_metric_points)');
          await eventually('the sidecar exports to the restarted collector', 30_000, async () => {
            const now = await promQuery(prometheus.url, 'sum(otelcol_receiver_accepted_metric_points)');
            expect(now[0]?.value ?? 0).toBeGreaterThan(0);
            expect(now[0]?.value).not.toBe(before[0]?.value);
          });
        }
        expect((await send(sidecar.url, p)).status).toBe(200);
        await sleep(OUTAGE_MS / 2 / outage.length);
      }
    });
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - started)));
    // The sidecar handed every record over: none dropped on its side.
    const metrics = await get(`${sidecar.adminUrl}/metrics`);
    expect(metrics.body).not.toMatch(/agent_telemetry_dropped_total\{[^}]*signal="logs"[^}]*\} [1-9]/);
    await phase('Elasticsearch restarted', () => es.start());
    const ids = [...requests, ...outage].map((p) => p.id);
    const docs = await phase('every record indexed after the outage', () =>
      eventually(
        'all access records after the outage',
        180_000,
        async () => {
          const found = await accessRecords(ids);
          const present = new Set(found.map((d) => d.request_id as string));
          expect(ids.filter((id) => !present.has(id))).toEqual([]);
          return found;
        },
        2000,
      ),
    );
    const duplicates = docs.length - new Set(docs.map((d) => d.request_id)).size;
    timings.push([`  (${outage.length} records sent during the outage; ${duplicates} duplicates, at-least-once)`, 0]);
  }, 600_000);
});
