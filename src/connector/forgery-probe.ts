import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { generateSecret, nowSeconds, signDelivery } from '../auth/index.js';
import type { TargetGuard } from '../common/ssrf.js';
import {
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  INTERRUPT_DELIVERY_SUFFIX,
  interruptDeliveryBody,
} from '../protocol/index.js';
import type { ConnectorMetrics } from './metrics.js';
import { postBytes } from './signed-post.js';
import type { RelayStore } from './store/types.js';

/**
 * Negative probe: now and then send every gateway endpoint a delivery signed with a random key.
 * A correct receiver answers 401. One that accepts it would accept anyone's forgeries, so it is
 * flagged in `/metrics` and in the audit log shown by `hermes connector deliveries`. The probe is an
 * interrupt for a session that cannot exist, so even a broken receiver dispatches nothing harmful.
 */

export interface ProbeResult {
  endpoint: string;
  outcome: 'rejected' | 'accepted' | 'unexpected' | 'unreachable';
  status: number | null;
}

export class ForgeryProbe {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RelayStore,
    private readonly metrics: ConnectorMetrics,
    private readonly log: Logger,
    private readonly intervalMs: number,
    /** The SSRF rule for endpoints (default: public addresses only). */
    private readonly targets?: TargetGuard,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.runOnce().catch(() => undefined), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async runOnce(): Promise<ProbeResult[]> {
    const endpoints = [
      ...new Set((await this.store.listRoutes()).map((route) => route.endpoint).filter(Boolean)),
    ];
    const results: ProbeResult[] = [];
    for (const endpoint of endpoints) results.push(await this.probe(endpoint));
    return results;
  }

  private async probe(endpoint: string): Promise<ProbeResult> {
    const sessionKey = `agent:main:relay:probe:${randomBytes(8).toString('hex')}`;
    const body = Buffer.from(JSON.stringify(interruptDeliveryBody(sessionKey, '', 'probe')), 'utf8');
    const ts = nowSeconds();
    const outcome = await postBytes(
      endpoint + INTERRUPT_DELIVERY_SUFFIX,
      body,
      {
        'content-type': 'application/json',
        [HEADER_TIMESTAMP]: String(ts),
        [HEADER_SIGNATURE]: signDelivery(body, generateSecret(), ts),
      },
      10_000,
      this.targets,
    );
    let result: ProbeResult;
    if (outcome.kind === 'error') result = { endpoint, outcome: 'unreachable', status: null };
    else if (outcome.status === 401) result = { endpoint, outcome: 'rejected', status: 401 };
    else if (outcome.status >= 200 && outcome.status < 300)
      result = { endpoint, outcome: 'accepted', status: outcome.status };
    else result = { endpoint, outcome: 'unexpected', status: outcome.status };

    this.metrics.probes.inc({ outcome: result.outcome });
    // Labelled by a short hash: the URL is tenant-controlled and /metrics is unauthenticated.
    this.metrics.forgeryAccepted.set(
      { endpoint: endpointLabel(endpoint) },
      result.outcome === 'accepted' ? 1 : 0,
    );
    if (result.outcome === 'accepted') {
      this.log.error({ endpoint }, 'gateway endpoint ACCEPTED a delivery signed with a wrong key');
      await this.store.audit({
        at: Date.now(),
        event: 'forgery_accepted',
        detail: { endpoint, status: result.status },
      });
    }
    return result;
  }
}

/** The `/metrics` label for an endpoint: `ep-` + 12 hex of its SHA-256 (logs and audit have the URL). */
export function endpointLabel(endpoint: string): string {
  return `ep-${createHash('sha256').update(endpoint).digest('hex').slice(0, 12)}`;
}
