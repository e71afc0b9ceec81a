import type { Logger } from 'pino';
import { errorMessage } from '../../common/errors.js';
import type { ConnectorMetrics } from '../metrics.js';
import type { RelayStore } from '../store/types.js';
import type { ClusterBus } from './bus.js';

/**
 * Releases the outbox claims of instances that died, as soon as their heartbeat lapses, instead of
 * waiting out the claim lease (60 s). Their deliveries are retried by whoever claims them next, in
 * session order; a delivery the dead instance had already sent is sent again, and gateways drop
 * the repeat by its delivery id.
 */
export class ClaimReaper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly store: RelayStore,
    private readonly bus: ClusterBus,
    private readonly metrics: ConnectorMetrics,
    private readonly log: Logger,
    private readonly onReleased: () => void,
    private readonly everyMs = 2_000,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async sweep(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let released = 0;
    try {
      const others = (await this.store.listClaimers()).filter((id) => id !== this.bus.instanceId);
      for (const dead of await this.bus.deadInstances(others)) {
        const count = await this.store.releaseClaims(dead, this.now());
        if (count === 0) continue;
        released += count;
        this.log.warn(
          { instance: dead, released: count },
          'released the outbox claims of a dead connector instance',
        );
      }
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'dead-instance claim sweep failed');
    } finally {
      this.running = false;
    }
    if (released > 0) {
      this.metrics.claimsReleased.inc(released);
      this.onReleased();
    }
    return released;
  }
}
