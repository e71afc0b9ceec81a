import { type BoundedCache, boundedCache } from '../common/cache.js';
/**
 * Where each session's traffic last went, so an interrupt for a session reaches the same gateway
 * instance as its messages (the reference routing invariant), and carries the session's chat id
 * (spec decision 6). Bounded; the oldest entries are forgotten first.
 */
export interface SessionPlacement {
  tenantId: string;
  chatId: string;
  endpoint: string;
  gatewayId: string | null;
  connectionId?: string | undefined;
}

export class SessionDirectory {
  private readonly entries: BoundedCache<string, SessionPlacement>;

  constructor(capacity = 100_000) {
    this.entries = boundedCache({ max: capacity });
  }

  remember(sessionKey: string, placement: SessionPlacement): void {
    const previous = this.entries.peek(sessionKey);
    this.entries.set(sessionKey, {
      ...placement,
      connectionId: placement.connectionId ?? previous?.connectionId,
    });
  }

  noteConnection(sessionKey: string, connectionId: string): void {
    const entry = this.entries.peek(sessionKey);
    if (entry) entry.connectionId = connectionId;
  }

  get(sessionKey: string, tenantId: string): SessionPlacement | undefined {
    const entry = this.entries.peek(sessionKey);
    return entry && entry.tenantId === tenantId ? entry : undefined;
  }
}
