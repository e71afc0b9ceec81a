/**
 * Retention: the connector prunes what would otherwise grow for ever, on a schedule (first run a
 * minute after start, then hourly), in bounded batches of oldest rows so no transaction is long,
 * and safely from several instances at once (each batch is an idempotent delete; Postgres skips
 * rows another instance is deleting). One setting per kind (docs/configuration.md):
 *
 * - dead letters, by when they died (`RELAY_RETENTION_DEAD_LETTERS_DAYS`, default 30);
 * - audit events (`RELAY_RETENTION_AUDIT_DAYS`, default 90);
 * - chats (`chats`: which tenant a chat was delivered to, which authorises the tenant's ops to it
 *   and keeps another tenant from binding it), by their last record: only chats that have not
 *   written for that long (`RELAY_RETENTION_CHATS_DAYS`, default 365);
 * - web-chat history, by when a message was sent (`RELAY_RETENTION_WEBCHAT_DAYS`, default 30; the
 *   web chat also keeps at most 200 messages per chat);
 * - platform state (ingest dedupe keys, Discord sessions and interaction capabilities) once
 *   expired: each entry carries its own expiry (ingest dedupe keys an hour: `INGEST_DEDUPE_TTL_MS`).
 *
 * Re-hosted media are not here: the media store expires them itself (`RELAY_MEDIA_TTL_SECONDS`,
 * swept every five minutes by the connector). A setting of 0 keeps that kind for ever.
 *
 * The counting and deleting live here (and in the store's `countPrunable`/`prune`), so the CLI's
 * `hermes connector prune` and the running connector share them.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../common/errors.js';
import { PRUNE_KINDS, type PruneKind, type RelayStore } from './store/types.js';

const DAY_MS = 24 * 60 * 60_000;

/** How long each kind is kept, in milliseconds; 0 keeps it for ever. */
export interface RetentionSettings {
  deadLettersMs: number;
  auditMs: number;
  chatsMs: number;
  webchatMessagesMs: number;
}

export const DEFAULT_RETENTION_DAYS = {
  deadLetters: 30,
  audit: 90,
  chats: 365,
  webchatMessages: 30,
} as const;

export const DEFAULT_RETENTION: RetentionSettings = {
  deadLettersMs: DEFAULT_RETENTION_DAYS.deadLetters * DAY_MS,
  auditMs: DEFAULT_RETENTION_DAYS.audit * DAY_MS,
  chatsMs: DEFAULT_RETENTION_DAYS.chats * DAY_MS,
  webchatMessagesMs: DEFAULT_RETENTION_DAYS.webchatMessages * DAY_MS,
};

/** Rows per delete: one short statement each, so writers never wait long behind the pruner. */
export const PRUNE_BATCH = 500;
/** Between runs. */
export const PRUNE_INTERVAL_MS = 60 * 60_000;
/** From start to the first run: after start-up work, soon enough to matter after a long stop. */
export const PRUNE_FIRST_DELAY_MS = 60_000;

export type PruneCounts = Record<PruneKind, number>;

/**
 * The cutoff of each kind at `now`: rows older than it go (platform state: expired at it). A kind
 * kept for ever is left out.
 */
export function pruneCutoffs(settings: RetentionSettings, now: number): Partial<Record<PruneKind, number>> {
  const cutoffs: Partial<Record<PruneKind, number>> = { platformState: now };
  const ages: [PruneKind, number][] = [
    ['deadLetters', settings.deadLettersMs],
    ['audit', settings.auditMs],
    ['chats', settings.chatsMs],
    ['webchatMessages', settings.webchatMessagesMs],
  ];
  for (const [kind, ms] of ages) if (ms > 0) cutoffs[kind] = now - ms;
  return cutoffs;
}

const zeroCounts = (): PruneCounts => Object.fromEntries(PRUNE_KINDS.map((kind) => [kind, 0])) as PruneCounts;

/** What {@link pruneOnce} would remove at `now`, per kind (a dry run: nothing is deleted). */
export async function countPrunable(
  store: RelayStore,
  settings: RetentionSettings,
  now: number,
): Promise<PruneCounts> {
  const counts = zeroCounts();
  for (const [kind, before] of Object.entries(pruneCutoffs(settings, now)) as [PruneKind, number][])
    counts[kind] = await store.countPrunable(kind, before);
  return counts;
}

/**
 * Remove everything past its retention at `now`, kind by kind, in batches of `batch` oldest rows
 * (each its own short transaction), yielding to other work between batches. Returns how many of
 * each kind went. `stopped` ends it early between batches (a connector shutting down).
 */
export async function pruneOnce(
  store: RelayStore,
  settings: RetentionSettings,
  now: number,
  options: { batch?: number; stopped?: () => boolean } = {},
): Promise<PruneCounts> {
  const batch = Math.max(1, Math.floor(options.batch ?? PRUNE_BATCH));
  const counts = zeroCounts();
  for (const [kind, before] of Object.entries(pruneCutoffs(settings, now)) as [PruneKind, number][]) {
    for (;;) {
      if (options.stopped?.()) return counts;
      const removed = await store.prune(kind, before, batch);
      counts[kind] += removed;
      if (removed < batch) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return counts;
}

export const totalPruned = (counts: PruneCounts): number =>
  Object.values(counts).reduce((sum, n) => sum + n, 0);

export interface RetentionPrunerOptions {
  store: RelayStore;
  settings: RetentionSettings;
  log: Logger;
  /** Clock (default `Date.now`). */
  now?: () => number;
  intervalMs?: number;
  firstDelayMs?: number;
  batch?: number;
}

/** The connector's scheduled pruning (see the module comment). */
export class RetentionPruner {
  readonly #options: RetentionPrunerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #started = false;
  #stopping = false;

  constructor(options: RetentionPrunerOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stopping = false;
    this.#schedule(this.#options.firstDelayMs ?? PRUNE_FIRST_DELAY_MS);
  }

  /** Stops scheduling and waits for a run in progress (it ends after its current batch). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#started = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Resolves once no run is in progress (tests with a fake clock). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** One run now; the counts, logged in one line when anything went. Never rejects. */
  async runOnce(): Promise<PruneCounts> {
    const { store, settings, log, batch } = this.#options;
    const now = (this.#options.now ?? Date.now)();
    try {
      const counts = await pruneOnce(store, settings, now, {
        ...(batch === undefined ? {} : { batch }),
        stopped: () => this.#stopping,
      });
      if (totalPruned(counts) > 0) log.info({ pruned: counts }, 'retention: old rows pruned');
      return counts;
    } catch (error) {
      log.warn({ err: errorMessage(error) }, 'retention: pruning failed; trying again next hour');
      return zeroCounts();
    }
  }

  #schedule(delayMs: number): void {
    if (!this.#started) return;
    this.#timer = setTimeout(() => {
      this.#running = this.runOnce().then(() => {
        this.#running = undefined;
        this.#schedule(this.#options.intervalMs ?? PRUNE_INTERVAL_MS);
      });
    }, delayMs);
    this.#timer.unref();
  }
}

/** Days as milliseconds, for settings. */
export const daysToMs = (days: number): number => Math.round(days * DAY_MS);
