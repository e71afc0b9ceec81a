import { z } from 'zod';
import type { PlatformState } from '../types.js';

/**
 * The capability vault (current §12): a Discord interaction's token stays on the connector, bound
 * to the tenant and the session the gateway will name in `follow_up`; the gateway never sees it.
 * Kept in the shared platform state, so a follow-up works from whichever connector instance holds
 * the gateway's socket, and across a restart, for as long as Discord honours the token.
 */

/** Discord accepts follow-ups on an interaction token for 15 minutes. */
export const INTERACTION_TOKEN_TTL_MS = 15 * 60_000;

const CapabilitySchema = z.object({
  tenantId: z.string(),
  token: z.string(),
  interactionId: z.string(),
  /** A deferred "thinking…" reply waits to be replaced by the first follow-up. */
  originalPending: z.boolean(),
  expiresAt: z.number(),
});
export type InteractionCapability = z.infer<typeof CapabilitySchema>;

export class InteractionVault {
  constructor(
    private readonly state: PlatformState,
    private readonly applicationId: string,
    private readonly now: () => number = Date.now,
  ) {}

  async bind(sessionKey: string, capability: Omit<InteractionCapability, 'expiresAt'>): Promise<void> {
    const entry: InteractionCapability = { ...capability, expiresAt: this.now() + INTERACTION_TOKEN_TTL_MS };
    await this.state.put(this.key(sessionKey), JSON.stringify(entry), INTERACTION_TOKEN_TTL_MS);
  }

  /** The session's live capability for this tenant; undefined when absent, expired or another tenant's. */
  async resolve(tenantId: string, sessionKey: string): Promise<InteractionCapability | undefined> {
    const raw = await this.state.get(this.key(sessionKey));
    if (!raw) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return undefined;
    }
    const entry = CapabilitySchema.safeParse(parsed);
    if (!entry.success || entry.data.tenantId !== tenantId || entry.data.expiresAt <= this.now())
      return undefined;
    return entry.data;
  }

  /** The deferred reply was replaced: later follow-ups post new messages. */
  async markOriginalAnswered(sessionKey: string, capability: InteractionCapability): Promise<void> {
    const remaining = capability.expiresAt - this.now();
    if (remaining <= 0) return;
    await this.state.put(
      this.key(sessionKey),
      JSON.stringify({ ...capability, originalPending: false }),
      remaining,
    );
  }

  private key(sessionKey: string): string {
    return `discord:${this.applicationId}:interaction:${sessionKey}`;
  }
}
