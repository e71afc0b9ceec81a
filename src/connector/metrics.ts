import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one connector; a registry per instance so tests can run several. */
export class ConnectorMetrics {
  readonly registry = new Registry();

  readonly connections = new Gauge({
    name: 'relay_gateway_connections',
    help: 'Authenticated gateway WebSockets currently open',
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'relay_gateway_auth_failures_total',
    help: 'Gateway upgrades closed with 4401, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'relay_deliveries_total',
    help: 'Delivery attempts by outcome (delivered, retry, dead)',
    labelNames: ['outcome', 'transport'] as const,
    registers: [this.registry],
  });
  readonly deliveryLatency = new Histogram({
    name: 'relay_delivery_latency_seconds',
    help: 'Time from an event entering the outbox to the gateway accepting it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600],
    registers: [this.registry],
  });
  readonly outboxDepth = new Gauge({
    name: 'relay_outbox_depth',
    help: 'Deliveries waiting in the outbox',
    registers: [this.registry],
  });
  readonly opLatency = new Histogram({
    name: 'relay_op_latency_seconds',
    help: 'Outbound op execution time on the platform, by op',
    labelNames: ['op', 'success'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly inboundEvents = new Counter({
    name: 'relay_inbound_events_total',
    help: 'Platform events by platform and outcome (queued, no_route, error)',
    labelNames: ['platform', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly interruptsDropped = new Counter({
    name: 'relay_interrupts_dropped_total',
    help: 'Gateway interrupts not queued: for a session never delivered, or coalesced into a pending one',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly malformedFrames = new Counter({
    name: 'relay_malformed_frames_total',
    help: 'WebSocket lines from gateways that were not valid frames',
    registers: [this.registry],
  });

  readonly probes = new Counter({
    name: 'relay_forgery_probes_total',
    help: 'Badly signed probe deliveries sent to gateway endpoints, by outcome (rejected is correct)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly forgeryAccepted = new Gauge({
    name: 'relay_gateway_accepts_forgery',
    help: '1 when the endpoint accepted a delivery signed with a wrong key at its last probe',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly busRequests = new Counter({
    name: 'relay_cluster_requests_total',
    help: 'Requests to other connector instances (socket deliveries, platform ops), by outcome',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly leaseHeld = new Gauge({
    name: 'relay_platform_lease_held',
    help: '1 while this instance holds the lease to run a platform connection (e.g. Telegram polling)',
    labelNames: ['platform'] as const,
    registers: [this.registry],
  });
  readonly claimsReleased = new Counter({
    name: 'relay_cluster_claims_released_total',
    help: 'Outbox claims of dead connector instances released for retry by this instance',
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'relay_build_info',
    help: 'Always 1; the version label is the running hermes-relay',
    labelNames: ['version'] as const,
    registers: [this.registry],
  });
  readonly webchatConnections = new Gauge({
    name: 'relay_webchat_connections',
    help: 'Web-chat visitor WebSockets open on this instance',
    registers: [this.registry],
  });
  readonly deadLetters = new Gauge({
    name: 'relay_dead_letters',
    help: 'Dead letters in the store (all instances share it); relay_deliveries_total{outcome="dead"} counts new ones',
    registers: [this.registry],
  });

  /** Read at scrape time ({@link sample}): values that live elsewhere (the store, the web-chat adapter). */
  readonly #samplers: (() => Promise<void> | void)[] = [];

  constructor(options: { defaultMetrics?: boolean; version?: string; platforms?: readonly string[] } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    if (options.version !== undefined) this.buildInfo.set({ version: options.version }, 1);
    this.initialiseLabels(options.platforms ?? []);
  }

  /** Add a value read at scrape time. */
  sampleWith(sampler: () => Promise<void> | void): void {
    this.#samplers.push(sampler);
  }

  /** Refresh the sampled values, then the Prometheus text. */
  async render(): Promise<string> {
    await Promise.all(this.#samplers.map(async (sampler) => sampler()));
    return this.registry.metrics();
  }

  /**
   * Every labelled counter exists at zero for its known label values from the first scrape, so
   * `rate()` and `increase()` see the first event rather than a series appearing mid-way.
   */
  private initialiseLabels(platforms: readonly string[]): void {
    for (const outcome of ['delivered', 'retry', 'dead', 'expired'])
      for (const transport of ['http', 'socket']) this.deliveries.inc({ outcome, transport }, 0);
    for (const reason of [
      'missing_bearer_token',
      'malformed_token',
      'unknown_gateway',
      'gateway_revoked',
      'gateway_mismatch',
      'bad_signature',
      'expired',
      'malformed',
      'no_secret',
      'non_expiring',
      'exp_too_far',
      'internal_error',
    ])
      this.authFailures.inc({ reason }, 0);
    for (const platform of platforms)
      for (const outcome of ['queued', 'no_route', 'irrelevant', 'unsupported', 'duplicate', 'error'])
        this.inboundEvents.inc({ platform, outcome }, 0);
    for (const reason of ['coalesced', 'unknown_session']) this.interruptsDropped.inc({ reason }, 0);
    for (const outcome of ['rejected', 'accepted', 'unreachable', 'unexpected'])
      this.probes.inc({ outcome }, 0);
    for (const type of ['socket_delivery', 'platform_op'])
      for (const outcome of ['answered', 'no_answer']) this.busRequests.inc({ type, outcome }, 0);
  }
}
