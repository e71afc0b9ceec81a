import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INGEST_DEDUPE_TTL_MS } from '../../src/connector/platforms/types.js';
import { RetentionPruner, type RetentionSettings } from '../../src/connector/retention.js';
import { PostgresStore } from '../../src/connector/store/postgres.js';
import { SqliteStore } from '../../src/connector/store/sqlite.js';
import { PRUNE_KINDS, type PruneKind, type RelayStore } from '../../src/connector/store/types.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { tempDir } from '../support/processes.js';
import { delivery } from './store-contract.js';

/**
 * A 24-hour soak on a fake clock: a steady stream of deliveries (each with an ingest dedupe key,
 * one in five dead-lettered), audit events, chats, and web-chat messages from new visitors, while
 * the clock moves on in 5-minute steps and the pruner runs on its own schedule (a minute after
 * start, then hourly). Without pruning every count would grow linearly for 24 hours; with it each
 * plateaus at about (retention + one interval) of traffic, and the SQLite file stops growing as
 * freed pages are reused.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const STEP = 5 * MINUTE;
const RETENTION: RetentionSettings = {
  deadLettersMs: 3 * HOUR,
  auditMs: 3 * HOUR,
  chatsMs: 3 * HOUR,
  webchatMessagesMs: 3 * HOUR,
};
/** Per 5-minute step. */
const RATE = { deliveries: 20, deadLetters: 4, audit: 10, chats: 5, webchat: 12 };

interface Sample {
  hour: number;
  rows: Record<PruneKind, number>;
  outbox: number;
  pages?: number;
}

async function soak(store: RelayStore, pages?: () => number): Promise<Sample[]> {
  const tenant = await store.createTenant('soak', Date.now());
  const pruner = new RetentionPruner({
    store,
    settings: RETENTION,
    log: pino({ level: 'silent' }),
    batch: 100,
  });
  pruner.start();
  const samples: Sample[] = [];
  let n = 0;
  try {
    for (let step = 1; step <= (24 * HOUR) / STEP; step++) {
      const now = Date.now();
      const batch = Array.from({ length: RATE.deliveries }, () => {
        n += 1;
        return {
          ...delivery(`d${n}`, `chat-${n % 50}`, { tenantId: tenant.id, createdAt: now }),
          dedupe: { key: `telegram:bot:update:${n}`, until: now + INGEST_DEDUPE_TTL_MS },
        };
      });
      await store.enqueueDeliveries(batch);
      // Every session is due now; claim until the outbox is drained (one message per session at a time).
      let claimedSoFar = 0;
      while (claimedSoFar < RATE.deliveries) {
        const claimed = await store.claimDueDeliveries('soak', now, 100, MINUTE);
        expect(claimed.length).toBeGreaterThan(0);
        for (const d of claimed) {
          claimedSoFar += 1;
          if (claimedSoFar <= RATE.deadLetters)
            await store.deadLetterDelivery(d.id, 'soak', 'gone', 410, now);
          else await store.completeDelivery(d.id, 'soak');
        }
      }
      for (let i = 0; i < RATE.audit; i++)
        await store.audit({ at: now, event: 'delivery_failed', detail: { step, i } });
      for (let i = 0; i < RATE.chats; i++)
        await store.recordChat({
          tenantId: tenant.id,
          platform: 'telegram',
          chatId: `${step}-${i}`,
          routeKey: `${step}-${i}`,
          updatedAt: now,
        });
      // A new visitor each step, a short conversation.
      for (let i = 0; i < RATE.webchat; i++)
        await store.appendWebChatMessage(
          {
            chatId: `wc-soak-visitor${step}`,
            id: `m-${step}-${i}`,
            clientId: i % 2 === 0 ? `c${i}` : null,
            body: JSON.stringify({ id: `m-${step}-${i}`, role: 'user', text: 'x'.repeat(200), ts: now }),
            createdAt: now,
          },
          200,
        );
      await vi.advanceTimersByTimeAsync(STEP);
      await pruner.idle();
      if ((step * STEP) % HOUR === 0) {
        const rows = {} as Record<PruneKind, number>;
        for (const kind of PRUNE_KINDS) rows[kind] = await store.countPrunable(kind, Number.MAX_SAFE_INTEGER);
        samples.push({
          hour: (step * STEP) / HOUR,
          rows,
          outbox: await store.outboxDepth(),
          ...(pages ? { pages: pages() } : {}),
        });
      }
    }
  } finally {
    await pruner.stop();
  }
  return samples;
}

function expectPlateau(samples: Sample[]): void {
  const at = (hour: number) => samples.find((s) => s.hour === hour) as Sample;
  const perHour = (perStep: number) => perStep * (HOUR / STEP);
  // The most any kind may hold: retention plus one pruning interval (plus a step) of its traffic.
  const window = (RETENTION.deadLettersMs + HOUR + STEP) / HOUR;
  const bound: Record<PruneKind, number> = {
    deadLetters: perHour(RATE.deadLetters) * window,
    audit: perHour(RATE.audit) * window,
    chats: perHour(RATE.chats) * window,
    webchatMessages: perHour(RATE.webchat) * window,
    // Dedupe keys live an hour.
    platformState: perHour(RATE.deliveries) * ((INGEST_DEDUPE_TTL_MS + HOUR + STEP) / HOUR),
  };
  for (const kind of PRUNE_KINDS) {
    const series = samples.map((s) => s.rows[kind]);
    // Bounded all day, and as many rows at hour 24 as at hour 8: a plateau, not a line.
    expect(Math.max(...series), `${kind}: ${series.join(' ')}`).toBeLessThanOrEqual(bound[kind]);
    expect(at(24).rows[kind], `${kind}: ${series.join(' ')}`).toBe(at(8).rows[kind]);
    // And pruning really happened: 24 hours of traffic is several times the plateau.
    expect(at(24).rows[kind] * 4).toBeLessThan(
      kind === 'platformState'
        ? perHour(RATE.deliveries) * 24
        : perHour(RATE[kind === 'webchatMessages' ? 'webchat' : kind]) * 24,
    );
  }
  for (const s of samples) expect(s.outbox).toBe(0);
}

describe('retention soak: 24 hours on a fake clock', () => {
  const dir = tempDir('retention-soak');
  afterAll(() => dir.remove());
  afterEach(() => {
    vi.useRealTimers();
  });

  it('SQLite: row counts and the file’s page count plateau', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: Date.UTC(2026, 0, 1) });
    const file = join(dir.path, 'soak.db');
    const store = SqliteStore.open(file);
    const reader = new Database(file, { readonly: true });
    try {
      const samples = await soak(store, () => reader.pragma('page_count', { simple: true }) as number);
      expectPlateau(samples);
      const pages = samples.map((s) => s.pages as number);
      const at = (hour: number) => samples[hour - 1]?.pages as number;
      // Freed pages are reused: from hour 8 on the file grows by at most a few pages, not by 16
      // more hours of traffic (it had grown ~4× from hour 1 to hour 4 while filling up).
      expect(at(24), pages.join(' ')).toBeLessThanOrEqual(Math.ceil(at(8) * 1.05));
      expect(Math.max(...pages.slice(7)), pages.join(' ')).toBeLessThanOrEqual(Math.ceil(at(8) * 1.05));
    } finally {
      reader.close();
      await store.close();
    }
  }, 120_000);
});

describe.skipIf(postgresUnavailable !== null)('retention soak: 24 hours on a fake clock, Postgres', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('row counts plateau', async () => {
    const url = await server.createSchema();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: Date.UTC(2026, 0, 1) });
    // The pool's own timers would run on the fake clock too: a 5-minute jump is not a timeout.
    const store = await PostgresStore.open(url, {
      maxConnections: 4,
      connectionTimeoutMs: 0,
      idleTimeoutMs: 0,
    });
    try {
      expectPlateau(await soak(store));
    } finally {
      await store.close();
    }
  }, 300_000);
});
