import { z } from 'zod';
import type { PlatformState } from '../types.js';

/**
 * The capability vault (current §12): a Discord interaction's token stays on the connector, bound
 * to the tenant and the session the gateway will name in `follow_up`; the gateway never sees it.
 * Kept in the shared platform state, so a follow-up works from whichever connector instance holds
 * the gateway's socket, and across a restart, for as long as Discord honours the token.
 *
 * A session can hold several live interactions (a second slash command queued behind the first, a
 * `/stop` or a button press during a turn): they are kept in order, and a follow-up answers the
 * oldest whose "thinking…" reply still waits, else the newest — so each deferred reply is replaced
 * by the answer to its own command, in turn.
 */

/** Discord accepts follow-ups on an interaction token for 15 minutes from the interaction. */
export const INTERACTION_TOKEN_TTL_MS = 15 * 60_000;
/** Discord snowflakes count milliseconds from 2015-01-01. */
const DISCORD_EPOCH_MS = 1_420_070_400_000;
/** Live interactions kept per session; older ones are dropped first. */
const MAX_PER_SESSION = 10;

const CapabilitySchema = z.object({
  tenantId: z.string(),
  token: z.string(),
  interactionId: z.string(),
  /** A deferred "thinking…" reply waits to be replaced by the first follow-up. */
  originalPending: z.boolean(),
  expiresAt: z.number(),
});
export type InteractionCapability = z.infer<typeof CapabilitySchema>;
const EntriesSchema = z.array(CapabilitySchema).max(MAX_PER_SESSION);

/** When Discord stops honouring the interaction's token: 15 minutes after the interaction was made. */
export function interactionExpiry(interactionId: string, now: number): number {
  const fallback = now + INTERACTION_TOKEN_TTL_MS;
  if (!/^\d{15,25}$/.test(interactionId)) return fallback;
  const created = Number((BigInt(interactionId) >> 22n) + BigInt(DISCORD_EPOCH_MS));
  return created > 0 && created <= now ? Math.min(fallback, created + INTERACTION_TOKEN_TTL_MS) : fallback;
}

export class InteractionVault {
  constructor(
    private readonly state: PlatformState,
    private readonly applicationId: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bind an interaction to its session (again for a replay: nothing changes). */
  async bind(sessionKey: string, capability: Omit<InteractionCapability, 'expiresAt'>): Promise<void> {
    const now = this.now();
    const entries = (await this.read(sessionKey)).filter((entry) => entry.expiresAt > now);
    if (entries.some((entry) => entry.interactionId === capability.interactionId)) return;
    entries.push({ ...capability, expiresAt: interactionExpiry(capability.interactionId, now) });
    await this.write(sessionKey, entries.slice(-MAX_PER_SESSION));
  }

  /**
   * The capability a follow-up of this tenant's session uses: the oldest live one whose deferred
   * reply still waits, else the newest live one; undefined when none (absent, expired, or another
   * tenant's: the same answer, so a caller learns nothing of other tenants).
   */
  async resolve(tenantId: string, sessionKey: string): Promise<InteractionCapability | undefined> {
    const now = this.now();
    const live = (await this.read(sessionKey)).filter(
      (entry) => entry.tenantId === tenantId && entry.expiresAt > now,
    );
    return live.find((entry) => entry.originalPending) ?? live.at(-1);
  }

  /** The interaction's deferred reply was replaced: its later follow-ups post new messages. */
  async markOriginalAnswered(sessionKey: string, interactionId: string): Promise<void> {
    const entries = await this.read(sessionKey);
    const entry = entries.find((candidate) => candidate.interactionId === interactionId);
    if (!entry?.originalPending) return;
    entry.originalPending = false;
    await this.write(sessionKey, entries);
  }

  private async read(sessionKey: string): Promise<InteractionCapability[]> {
    const raw = await this.state.get(this.key(sessionKey));
    if (!raw) return [];
    try {
      const parsed = EntriesSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : [];
    } catch {
      return [];
    }
  }

  private async write(sessionKey: string, entries: InteractionCapability[]): Promise<void> {
    const now = this.now();
    const last = Math.max(0, ...entries.map((entry) => entry.expiresAt));
    if (last <= now) {
      await this.state.delete(this.key(sessionKey));
      return;
    }
    await this.state.put(this.key(sessionKey), JSON.stringify(entries), last - now);
  }

  private key(sessionKey: string): string {
    return `discord:${this.applicationId}:interaction:${sessionKey}`;
  }
}
