import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { freePort } from '../support/ports.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * Metrics from real processes: a connector and an enrolled `hermes gateway run` (echo agent) with
 * its metrics listener (GATEWAY_METRICS_PORT), a web-chat visitor, and a second room routed to an
 * endpoint that answers 400 (a dead letter). Then the shipped Grafana dashboard and Prometheus
 * alerts are checked against what the two processes really export.
 */

const dir = tempDir('metrics-e2e');
const db = join(dir.path, 'connector.db');
const home = join(dir.path, 'home');
const ROOT = join(import.meta.dirname, '..', '..');
let connector: RunningProcess & { url: string };
let gateway: RunningProcess;
let gatewayMetricsUrl: string;
let refusing: Server;
/** The first scrape of each process, before any traffic. */
let firstConnectorScrape = '';
let firstGatewayScrape = '';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[label[1] as string] = label[2] as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample named `name` whose labels include `labels` (undefined: none). */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = parseMetrics(text).filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, wanted]) => sample.labels[key] === wanted),
  );
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
}

const connectorMetrics = () => scrape(`${connector.url}/metrics`);
const gatewayMetrics = () => scrape(gatewayMetricsUrl);

beforeAll(async () => {
  refusing = createServer((_request, response) => response.writeHead(400).end('{"error":"no"}'));
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  const refusingUrl = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'metrics',
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    'metrics',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db);
  firstConnectorScrape = await connectorMetrics();
  const inboundPort = await freePort();
  const metricsPort = await freePort();
  const env = {
    HERMES_HOME: home,
    HERMES_PORTAL_TOKEN: accessToken,
    GATEWAY_RELAY_INBOUND_PORT: String(inboundPort),
    GATEWAY_METRICS_PORT: String(metricsPort),
    HERMES_AGENT: 'echo',
  };
  const enrolled = await hermes(
    ['gateway', 'enroll', '--token', token, '--connector-url', connector.url, '--gateway-id', 'gw-metrics'],
    env,
  );
  expect(enrolled.code, enrolled.stderr).toBe(0);
  for (const [room, endpoint] of [
    ['room', `http://127.0.0.1:${inboundPort}`],
    ['refused', refusingUrl],
  ] as const) {
    const route = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'metrics',
      '--platform',
      'webchat',
      '--key',
      room,
      '--endpoint',
      endpoint,
      '--db',
      db,
    ]);
    expect(route.code, route.stderr).toBe(0);
  }
  gateway = startHermes(['gateway', 'run'], env);
  await gateway.waitFor(/gateway running for/, 30_000);
  gatewayMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  firstGatewayScrape = await gatewayMetrics();
  await until(
    () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
    15_000,
    'relay connected',
  );
}, 90_000);

afterAll(async () => {
  await gateway?.stop('SIGINT');
  await connector?.stop();
  await new Promise((resolve) => refusing?.close(resolve));
  dir.remove();
});

describe('gateway metrics (GATEWAY_METRICS_PORT)', () => {
  it('serve only GET /metrics, on loopback, with every labelled series from the first scrape', async () => {
    expect(gatewayMetricsUrl.startsWith('http://127.0.0.1:')).toBe(true);
    expect(gateway.output()).toContain(`"url":"${gatewayMetricsUrl}"`);
    expect((await fetch(gatewayMetricsUrl.replace('/metrics', '/other'))).status).toBe(404);
    expect((await fetch(gatewayMetricsUrl, { method: 'POST' })).status).toBe(404);
    const text = firstGatewayScrape;
    expect(value(text, 'hermes_gateway_build_info', { version: '0.1.0' })).toBe(1);
    for (const outcome of [
      'answered',
      'failed',
      'stopped',
      'refused',
      'ignored',
      'cut_by_shutdown',
      'cut_by_crash',
    ])
      expect(value(text, 'hermes_gateway_turns_finished_total', { outcome }), outcome).toBe(0);
    for (const result of ['success', 'failed', 'ambiguous', 'declined'])
      expect(value(text, 'hermes_gateway_outbound_ops_total', { op: 'send', result })).toBe(0);
    expect(value(text, 'hermes_gateway_turns_started_total')).toBe(0);
    expect(value(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('follow the relay connection and count a real turn: started, answered, its duration, the send op', async () => {
    const connected = await until(
      async () => {
        const text = await gatewayMetrics();
        return value(text, 'hermes_gateway_relay_connected') === 1 ? text : undefined;
      },
      10_000,
      'relay_connected 1',
    );
    expect(value(connected, 'hermes_gateway_relay_state', { state: 'connected' })).toBe(1);
    expect(value(connected, 'hermes_gateway_relay_state', { state: 'retrying' })).toBe(0);

    const visitor = new WebChatClient(connector.url, 'room', 'visitor-metric1');
    await visitor.open();
    visitor.say('count me');
    await until(
      () => (visitor.agentTexts().includes('echo: count me') ? true : undefined),
      15_000,
      'echo reply',
    );
    const text = await until(
      async () => {
        const scraped = await gatewayMetrics();
        return value(scraped, 'hermes_gateway_turns_finished_total', { outcome: 'answered' }) === 1
          ? scraped
          : undefined;
      },
      10_000,
      'the turn counted',
    );
    expect(value(text, 'hermes_gateway_turns_started_total')).toBe(1);
    expect(value(text, 'hermes_gateway_turns_finished_total', { outcome: 'failed' })).toBe(0);
    expect(value(text, 'hermes_gateway_turn_duration_seconds_count', { outcome: 'answered' })).toBe(1);
    expect(value(text, 'hermes_gateway_turn_duration_seconds_sum', { outcome: 'answered' })).toBeGreaterThan(
      0,
    );
    expect(value(text, 'hermes_gateway_outbound_ops_total', { op: 'send', result: 'success' })).toBe(1);
    expect(value(text, 'hermes_gateway_active_turns')).toBe(0);
    expect(value(text, 'hermes_gateway_queued_events')).toBe(0);
    expect(value(text, 'hermes_gateway_session_queue_depth_max')).toBe(0);

    // Meanwhile the connector counts the visitor's socket.
    expect(value(await connectorMetrics(), 'relay_webchat_connections')).toBe(1);
    visitor.close();
    await until(
      async () => (value(await connectorMetrics(), 'relay_webchat_connections') === 0 ? true : undefined),
      10_000,
      'web-chat socket closed',
    );
  });
});

describe('connector metrics', () => {
  it('export build info and every labelled counter at zero from the first scrape', () => {
    const text = firstConnectorScrape;
    expect(value(text, 'relay_build_info', { version: '0.1.0' })).toBe(1);
    expect(value(text, 'relay_webchat_connections')).toBe(0);
    expect(value(text, 'relay_dead_letters')).toBe(0);
    for (const outcome of ['delivered', 'retry', 'dead', 'expired'])
      for (const transport of ['http', 'socket'])
        expect(value(text, 'relay_deliveries_total', { outcome, transport }), `${outcome}/${transport}`).toBe(
          0,
        );
    for (const outcome of ['queued', 'no_route', 'irrelevant', 'unsupported', 'duplicate', 'error'])
      expect(value(text, 'relay_inbound_events_total', { platform: 'webchat', outcome }), outcome).toBe(0);
    expect(value(text, 'relay_gateway_auth_failures_total', { reason: 'unknown_gateway' })).toBe(0);
    expect(value(text, 'relay_forgery_probes_total', { outcome: 'accepted' })).toBe(0);
    expect(value(text, 'relay_interrupts_dropped_total', { reason: 'coalesced' })).toBe(0);
  });

  it('count a dead letter in the table gauge and the dead-lettering counter', async () => {
    const visitor = new WebChatClient(connector.url, 'refused', 'visitor-metric2');
    await visitor.open();
    visitor.say('nobody takes this');
    const text = await until(
      async () => {
        const scraped = await connectorMetrics();
        return value(scraped, 'relay_dead_letters') === 1 ? scraped : undefined;
      },
      15_000,
      'one dead letter',
    );
    visitor.close();
    expect(value(text, 'relay_deliveries_total', { outcome: 'dead', transport: 'http' })).toBe(1);
    expect(value(text, 'relay_deliveries_total', { outcome: 'delivered', transport: 'http' })).toBe(1);
    const listed = await hermesJson<unknown[]>(['connector', 'deliveries', '--dead', '--db', db]);
    expect(listed).toHaveLength(1);
  });
});

describe('docs/grafana-dashboard.json and docs/prometheus-alerts.yml', () => {
  /** Every `relay_…` / `hermes_gateway_…` name in a PromQL text. */
  const metricNames = (expr: string): string[] => [
    ...new Set([...expr.matchAll(/\b(?:relay|hermes_gateway)_[a-z0-9_]+/g)].map((m) => m[0])),
  ];

  it('parse, and reference only metrics the running connector and gateway export', async () => {
    const exported = new Set(
      parseMetrics(`${await connectorMetrics()}\n${await gatewayMetrics()}`).map((sample) => sample.name),
    );

    const dashboard = JSON.parse(readFileSync(join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      title: string;
      panels: { title: string; targets: { expr: string }[] }[];
    };
    expect(dashboard.title).toBe('hermes-relay');
    const dashboardExprs = dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
    expect(dashboardExprs.length).toBeGreaterThan(10);

    const alerts = parseYaml(readFileSync(join(ROOT, 'docs', 'prometheus-alerts.yml'), 'utf8')) as {
      groups: { name: string; rules: { alert: string; expr: string; for?: string }[] }[];
    };
    const rules = alerts.groups.flatMap((group) => group.rules);
    expect(rules.map((rule) => rule.alert)).toEqual(
      expect.arrayContaining([
        'RelayOutboxDepthGrowing',
        'RelayDeadLettersRising',
        'RelayNoGatewayConnected',
        'GatewayRelayDisconnected',
        'GatewayTurnFailures',
      ]),
    );

    const referenced = new Set<string>();
    for (const expr of [...dashboardExprs, ...rules.map((rule) => rule.expr)]) {
      const names = metricNames(expr);
      expect(names.length, `no metric in ${expr}`).toBeGreaterThan(0);
      for (const name of names) referenced.add(name);
    }
    const missing = [...referenced].filter((name) => !exported.has(name));
    expect(missing).toEqual([]);
    // Both parts are covered.
    expect([...referenced].some((name) => name.startsWith('hermes_gateway_'))).toBe(true);
    expect([...referenced].some((name) => name.startsWith('relay_'))).toBe(true);
  });
});
