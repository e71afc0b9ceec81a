import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { isLoopbackHost } from '../common/loopback.js';
import { securityHeadersFor } from '../http/security-headers.js';
import { applyIdleTimeout, httpServerOptions } from '../http/server-limits.js';
import type { OutboundActionInput, OutboundResult } from '../protocol/index.js';
import { isEgressDecline } from '../protocol/index.js';
import type { TransportState } from './transport.js';

/**
 * Prometheus metrics of one gateway process (`hermes gateway run`), served by the gateway itself on
 * a small listener (`GATEWAY_METRICS_PORT`, loopback unless `GATEWAY_METRICS_HOST` says otherwise):
 * the counters live in this process, and the dashboard is another process that only reads the home.
 * Names start with `hermes_gateway_`; the connector's start with `relay_`.
 */

/**
 * How an accepted message ended: the inbox outcomes (`inbox.ts`) plus `failed`, a turn whose agent
 * failed (the chat was told; the inbox records it as answered).
 */
export const TURN_OUTCOMES = [
  'answered',
  'failed',
  'stopped',
  'refused',
  'ignored',
  'cut_by_shutdown',
  'cut_by_crash',
] as const;
export type TurnOutcome = (typeof TURN_OUTCOMES)[number];

export const OP_RESULTS = ['success', 'failed', 'ambiguous', 'declined'] as const;
export type OpResult = (typeof OP_RESULTS)[number];

const RELAY_STATES: readonly TransportState[] = ['connecting', 'connected', 'retrying', 'failed', 'stopped'];
/** The ops the gateway sends (`protocol/actions.ts`), initialised at zero for each result. */
const KNOWN_OPS = [
  'send',
  'edit',
  'typing',
  'send_media',
  'prompt',
  'react',
  'follow_up',
  'get_chat_info',
  'thread_create',
  'thread_rename',
] as const;

/** What the session manager reports (sessions.ts). */
export interface TurnMetrics {
  turnStarted(): void;
  /** An accepted message ended; `seconds` when it ran as a turn (observed in the duration histogram). */
  finished(outcome: TurnOutcome, seconds?: number): void;
}

/** The result class of an outbound op's answer. */
export function opResultOf(result: OutboundResult): OpResult {
  if (result.success !== false) return 'success';
  if (result.ambiguous === true) return 'ambiguous';
  return isEgressDecline(result) ? 'declined' : 'failed';
}

export class GatewayMetrics implements TurnMetrics {
  readonly registry = new Registry();

  readonly buildInfo = new Gauge({
    name: 'hermes_gateway_build_info',
    help: 'Always 1; the version label is the running hermes-relay',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });
  readonly turnsStarted = new Counter({
    name: 'hermes_gateway_turns_started_total',
    help: 'Agent turns started',
    registers: [this.registry],
  });
  readonly turnsFinished = new Counter({
    name: 'hermes_gateway_turns_finished_total',
    help: 'Accepted messages by how they ended (answered, failed, stopped, refused, ignored, cut_by_shutdown, cut_by_crash)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly turnDuration = new Histogram({
    name: 'hermes_gateway_turn_duration_seconds',
    help: 'Time from a turn starting to its end, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
    registers: [this.registry],
  });
  readonly activeTurns = new Gauge({
    name: 'hermes_gateway_active_turns',
    help: 'Turns running now (one per session at most)',
    registers: [this.registry],
  });
  readonly queuedEvents = new Gauge({
    name: 'hermes_gateway_queued_events',
    help: 'Messages waiting behind a running turn of their session, all sessions together',
    registers: [this.registry],
  });
  readonly sessionQueueDepthMax = new Gauge({
    name: 'hermes_gateway_session_queue_depth_max',
    help: 'Messages waiting in the longest session queue',
    registers: [this.registry],
  });
  readonly relayState = new Gauge({
    name: 'hermes_gateway_relay_state',
    help: '1 for the relay connection state the gateway is in (connecting, connected, retrying, failed, stopped), 0 for the others',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly relayConnected = new Gauge({
    name: 'hermes_gateway_relay_connected',
    help: '1 while the relay socket is connected (handshake done), else 0',
    registers: [this.registry],
  });
  readonly ops = new Counter({
    name: 'hermes_gateway_outbound_ops_total',
    help: 'Outbound ops sent to the connector, by op and result (success, failed, ambiguous, declined)',
    labelNames: ['op', 'result'] as const,
    registers: [this.registry],
  });

  constructor(options: { version: string; defaultMetrics?: boolean }) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: options.version }, 1);
    // Every labelled series exists from the first scrape, so rate() and alerts work at once.
    for (const outcome of TURN_OUTCOMES) this.turnsFinished.inc({ outcome }, 0);
    for (const op of KNOWN_OPS) for (const result of OP_RESULTS) this.ops.inc({ op, result }, 0);
    this.setRelayState('connecting');
  }

  turnStarted(): void {
    this.turnsStarted.inc();
  }

  finished(outcome: TurnOutcome, seconds?: number): void {
    this.turnsFinished.inc({ outcome });
    if (seconds !== undefined) this.turnDuration.observe({ outcome }, seconds);
  }

  setRelayState(state: TransportState): void {
    for (const each of RELAY_STATES) this.relayState.set({ state: each }, each === state ? 1 : 0);
    this.relayConnected.set(state === 'connected' ? 1 : 0);
  }

  op(action: OutboundActionInput, result: OutboundResult): void {
    this.ops.inc({ op: action.op, result: opResultOf(result) });
  }

  /** Read the session manager's gauges at scrape time. */
  sampleSessions(sample: () => { active: number; queued: number; deepest: number }): void {
    this.sample = sample;
  }

  private sample: (() => { active: number; queued: number; deepest: number }) | undefined;

  async render(): Promise<string> {
    const now = this.sample?.();
    if (now) {
      this.activeTurns.set(now.active);
      this.queuedEvents.set(now.queued);
      this.sessionQueueDepthMax.set(now.deepest);
    }
    return this.registry.metrics();
  }
}

/** Where the metrics listener binds (`GATEWAY_METRICS_PORT`, `GATEWAY_METRICS_HOST`); off when unset. */
export interface MetricsListenerSettings {
  host: string;
  port: number;
}

export class MetricsSettingError extends Error {
  override readonly name = 'MetricsSettingError';
}

/** `GATEWAY_METRICS_PORT` (0–65535; unset or empty: no listener) and `GATEWAY_METRICS_HOST` (default 127.0.0.1). */
export function metricsListenerFromEnv(env: NodeJS.ProcessEnv): MetricsListenerSettings | undefined {
  const portText = env.GATEWAY_METRICS_PORT?.trim();
  if (!portText) return undefined;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65_535)
    throw new MetricsSettingError(
      `GATEWAY_METRICS_PORT must be a port number from 0 to 65535, got ${JSON.stringify(env.GATEWAY_METRICS_PORT)}`,
    );
  return { host: env.GATEWAY_METRICS_HOST?.trim() || '127.0.0.1', port };
}

/**
 * `GET /metrics` (Prometheus text) and nothing else, on its own small server. Unauthenticated, like
 * the connector's: keep it on loopback (the default) or behind your scraper's network.
 */
export async function startMetricsListener(
  metrics: GatewayMetrics,
  settings: MetricsListenerSettings,
  log: Logger,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(httpServerOptions(), (request, response) => {
    securityHeadersFor(response);
    const path = (request.url ?? '/').split('?', 1)[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.render().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  applyIdleTimeout(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/metrics`;
  if (isLoopbackHost(settings.host)) log.info({ url }, 'metrics listening');
  else
    log.warn(
      { url },
      'metrics listening beyond this machine (GATEWAY_METRICS_HOST); they are unauthenticated',
    );
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
