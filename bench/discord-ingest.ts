import { join } from 'node:path';
import WebSocket from 'ws';
import { addRoute } from '../src/connector/admin.js';
import { DISCORD_INTERACTIONS_PATH, DiscordAdapter } from '../src/connector/platforms/discord/adapter.js';
import type { IngestOutcome } from '../src/connector/platforms/types.js';
import { WebChatAdapter, webchatChatId } from '../src/connector/platforms/webchat/adapter.js';
import { SqliteInbox } from '../src/gateway/inbox.js';
import { RelayTransport } from '../src/gateway/transport.js';
import { buildSessionKey } from '../src/protocol/index.js';
import { type FakeDiscord, startFakeDiscord } from '../test/support/fake-discord.js';
import {
  asyncWorkload,
  type BenchModule,
  type BenchResult,
  compare,
  quantile,
  type RunOptions,
} from './harness.js';
import {
  createBenchTenant,
  enrollBenchGateway,
  manualMeasurement,
  silentLog,
  sleep,
  startBareHttpServer,
  startBenchConnector,
  tempDir,
  waitFor,
  watchCompletions,
  watchIngests,
} from './support.js';

/**
 * Discord inbound through the connector's real `DiscordAdapter`, against the local fake Discord
 * (test/support/fake-discord.ts: its Gateway socket and REST API) in the same process.
 *
 * 1. Ingest: a `MESSAGE_CREATE` dispatched by the fake Gateway → `@discordjs/ws` → the adapter's
 *    dispatch queue (channel facts from its cache, normalise, `ingest`, session sequence saved) →
 *    outbox (a real SQLite file) → `inbound` frame on the gateway's socket → the real
 *    `RelayTransport` journals it in a gateway `SqliteInbox` → `inbound_ack` → the row completed.
 *    One operation is one dispatch, timed until its row is completed; one worker per channel.
 *    Baseline, interleaved: the web-chat ingest path in the same connector: a visitor's socket
 *    message → the real `WebChatAdapter` → the same outbox, socket and gateway, for an event of the
 *    same size (the event JSON the gateway receives), one worker per chat.
 * 2. Interaction acknowledgement: signed slash-command POSTs (type 2) to the connector's
 *    `/discord/interactions` at a steady rate, timed from the POST to the HTTP answer (`{type:5}`,
 *    given once the forward is durably queued). Baseline, in alternating slices: a bare
 *    `node:http` server answering `{"type":5}` at once, same client, same rate.
 */

const MODULE = 'discord-ingest';
const SESSIONS = 64;
const EVENT_BYTES = 1024;
const RATIO_TARGET = 0.7;
const OPTIONS: RunOptions = { warmupMs: 500, durationMs: 4_000, slices: 8, maxOps: 40_000 };
const INTERACTION_RATE = 200;
const INTERACTION_SLICE_MS = 1_000;
/** Per side, alternating (connector, bare, bare, connector, …). */
const INTERACTION_SLICES = 3;
const ACK_TARGET_MS = 100;
/** An operation that takes this long means the path is broken: fail the module rather than hang. */
const OP_TIMEOUT_MS = 15_000;

const GUILD = '1100000000000000001';
const ROOM = 'bench';
const channelId = (i: number): string => `12000000000000${String(i).padStart(5, '0')}`;
const visitorId = (i: number): string => `benchvisitor${String(i).padStart(4, '0')}`;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${MODULE}: ${what} took over ${OP_TIMEOUT_MS} ms`)),
      OP_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface SteadySlice {
  latenciesMs: number[];
  /** Answers other than 200 `{type:5}`. */
  bad: number;
  elapsedMs: number;
}

/** `count` signed interactions at `rate`/s (open loop: a send never waits for an earlier answer). */
async function steadyInteractions(
  discord: FakeDiscord,
  url: string,
  count: number,
  interaction: (i: number) => Record<string, unknown>,
): Promise<SteadySlice> {
  const latenciesMs: number[] = [];
  let bad = 0;
  const pending: Promise<void>[] = [];
  const interval = 1000 / INTERACTION_RATE;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = started + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(
      discord.postInteraction(url, interaction(i)).then(
        (answer) => {
          latenciesMs.push(answer.elapsedMs);
          if (answer.status !== 200 || (answer.body as { type?: unknown } | null)?.type !== 5) bad++;
        },
        () => {
          bad++;
        },
      ),
    );
  }
  await Promise.all(pending);
  return { latenciesMs, bad, elapsedMs: performance.now() - started };
}

async function run(): Promise<BenchResult[]> {
  const dir = tempDir('discord-ingest');
  const discord = await startFakeDiscord({ echo: false });
  for (let i = 0; i < SESSIONS; i++)
    discord.addChannel({
      id: channelId(i),
      type: 0,
      name: `bench-${String(i).padStart(2, '0')}`,
      guild_id: GUILD,
    });

  const discordAdapter = new DiscordAdapter({
    token: discord.token,
    applicationId: discord.applicationId,
    publicKey: discord.publicKeyHex,
    apiRoot: discord.apiRoot,
    gatewayUrl: discord.gatewayUrl,
    log: silentLog,
    rateLimitOffsetMs: 0,
  });
  const webchat = new WebChatAdapter({
    log: silentLog,
    maxSocketsPerAddress: SESSIONS * 2,
    // The bench sends far faster than a person: the per-socket limit is lifted.
    rateLimit: { messages: 1_000_000, windowMs: 1 },
  });
  const discordIngests = watchIngests(discordAdapter);
  const webchatIngests = watchIngests(webchat);
  const { connector, store, relayUrl } = await startBenchConnector(join(dir.path, 'connector.db'), [
    discordAdapter,
    webchat,
  ]);
  const { completed } = watchCompletions(store);
  const tenant = await createBenchTenant(store, 'bench-discord');
  const gatewayId = 'gw-bench-discord';
  const secret = await enrollBenchGateway(store, tenant.tenantId, gatewayId, 'discord');
  // No endpoint and no relevance policy: every message is delivered on the gateway's socket.
  await addRoute(store, { tenantRef: tenant.tenantId, platform: 'discord', routeKey: GUILD });
  await addRoute(store, { tenantRef: tenant.tenantId, platform: 'webchat', routeKey: ROOM });

  // The gateway side as in ws-inbound: journal durably, then acknowledge.
  const inbox = SqliteInbox.open(join(dir.path, 'inbox.db'));
  const eventBytes = new Map<string, number>();
  let measuringSizes = false;
  const transport = new RelayTransport({
    url: relayUrl,
    credentials: () => ({ gatewayId, secret }),
    platform: 'discord',
    botId: discord.applicationId,
    log: silentLog,
    onInbound: async (event, bufferId) => {
      if (measuringSizes) eventBytes.set(event.source.platform, Buffer.byteLength(JSON.stringify(event)));
      const id = inbox.accept(bufferId, buildSessionKey(event.source), event);
      if (id !== null) inbox.done(id);
      await inbox.committed();
    },
  });
  transport.start();

  const visitors: WebSocket[] = [];
  const bare = await startBareHttpServer('{"type":5}');
  try {
    await waitFor(() => transport.connected, 10_000, 'relay handshake');
    await withTimeout(discord.waitForReady(), 'the Discord adapter identifying');
    const base = connector.url.replace(/^http/, 'ws');
    for (let i = 0; i < SESSIONS; i++) {
      const socket = new WebSocket(`${base}/chat/ws?room=${ROOM}&visitor=${visitorId(i)}`);
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      visitors.push(socket);
    }

    let failed = 0;
    const untilCompleted = async (outcome: Promise<IngestOutcome>, what: string): Promise<void> => {
      const done = outcome.then((o) => {
        if (!o.ok) {
          failed++;
          throw new Error(`${what}: ingest ${o.reason}: ${o.message}`);
        }
        return completed(o.deliveryId);
      });
      await withTimeout(done, what);
    };
    const sendDiscord = (i: number, text: string): Promise<void> => {
      const outcome = discordIngests.next(channelId(i));
      discord.dispatchMessage({ channel_id: channelId(i), guild_id: GUILD, content: text });
      return untilCompleted(outcome, 'a Discord message');
    };
    const sendWebchat = (i: number, frame: string): Promise<void> => {
      const outcome = webchatIngests.next(webchatChatId(ROOM, visitorId(i)));
      visitors[i]?.send(frame);
      return untilCompleted(outcome, 'a web chat message');
    };
    const webchatFrame = (text: string): string => JSON.stringify({ type: 'message', text });

    // Same event size on both paths: measure the event the gateway receives for a one-character
    // text, then pad each path's text to EVENT_BYTES.
    measuringSizes = true;
    await sendDiscord(0, 'x');
    await sendWebchat(0, webchatFrame('x'));
    const discordText = 'x'.repeat(EVENT_BYTES - (eventBytes.get('discord') ?? 0) + 1);
    const webchatText = 'x'.repeat(EVENT_BYTES - (eventBytes.get('webchat') ?? 0) + 1);
    const frame = webchatFrame(webchatText);
    // Also fills the adapter's channel cache (one REST lookup per channel) and opens every session.
    await Promise.all(
      Array.from({ length: SESSIONS }, (_, i) =>
        Promise.all([sendDiscord(i, discordText), sendWebchat(i, frame)]),
      ),
    );
    measuringSizes = false;
    const sizes = { discord: eventBytes.get('discord') ?? 0, webchat: eventBytes.get('webchat') ?? 0 };
    const channelLookups = discord.requests.filter((r) => r.method === 'GET' && /^\/channels\//.test(r.path));

    const freeChannels = Array.from({ length: SESSIONS }, (_, i) => i);
    const subject = asyncWorkload(
      `fake Gateway MESSAGE_CREATE → DiscordAdapter → outbox → socket → gateway inbox → inbound_ack, ${SESSIONS} channels`,
      async () => {
        const i = freeChannels.pop();
        if (i === undefined) throw new Error('more workers than channels');
        try {
          await sendDiscord(i, discordText);
        } finally {
          freeChannels.push(i);
        }
      },
      SESSIONS,
    );
    const freeVisitors = Array.from({ length: SESSIONS }, (_, i) => i);
    const baseline = asyncWorkload(
      `web chat: visitor socket → WebChatAdapter → the same path, ${SESSIONS} chats`,
      async () => {
        const i = freeVisitors.pop();
        if (i === undefined) throw new Error('more workers than visitors');
        try {
          await sendWebchat(i, frame);
        } finally {
          freeVisitors.push(i);
        }
      },
      SESSIONS,
    );

    const ingest = await compare({
      module: MODULE,
      name: `MESSAGE_CREATE → completed outbox row, ${EVENT_BYTES / 1024} KiB events, ${SESSIONS} channels`,
      subject,
      baseline,
      target: RATIO_TARGET,
      options: OPTIONS,
    });
    const ms = (us: number | undefined): string => (us === undefined ? '?' : (us / 1000).toFixed(2));
    ingest.note =
      `latency = dispatch (or visitor send) → outbox row completed after the inbound_ack; event JSON ` +
      `${sizes.discord} B (Discord) vs ${sizes.webchat} B (web chat); ${channelLookups.length} channel ` +
      `lookups over REST for ${SESSIONS} channels`;
    console.log(
      `  discord-ingest: ${ingest.figure.opsPerSec.toFixed(0)} dispatches/s (p50 ${ms(ingest.figure.p50Us)} ms, ` +
        `p99 ${ms(ingest.figure.p99Us)} ms) vs web chat ${ingest.baseline.opsPerSec.toFixed(0)} messages/s ` +
        `(p50 ${ms(ingest.baseline.p50Us)} ms, p99 ${ms(ingest.baseline.p99Us)} ms); events ` +
        `${sizes.discord} / ${sizes.webchat} B; ${failed} failed ingests; ${channelLookups.length} channel lookups`,
    );

    // Interactions: slash commands spread over the channels (one session each), alternating slices.
    const ALICE = { id: '700000000000000001', username: 'alice', global_name: 'Alice' };
    const command = (i: number): Record<string, unknown> => {
      const channel = channelId(i % SESSIONS);
      return {
        type: 2,
        guild_id: GUILD,
        channel_id: channel,
        channel: { id: channel, type: 0 },
        member: { user: ALICE },
        data: { id: '1300000000000000001', name: 'summarize', type: 1 },
      };
    };
    const perSlice = Math.round((INTERACTION_RATE * INTERACTION_SLICE_MS) / 1000);
    const connectorUrl = `${connector.url}${DISCORD_INTERACTIONS_PATH}`;
    // Warm both (connections, JIT), unrecorded.
    await steadyInteractions(discord, connectorUrl, 40, command);
    await steadyInteractions(discord, bare.url, 40, command);
    const sides = { connector: [] as SteadySlice[], bare: [] as SteadySlice[] };
    for (let s = 0; s < INTERACTION_SLICES * 2; s++) {
      const connectorTurn = s % 4 === 0 || s % 4 === 3;
      const slice = await steadyInteractions(
        discord,
        connectorTurn ? connectorUrl : bare.url,
        perSlice,
        command,
      );
      (connectorTurn ? sides.connector : sides.bare).push(slice);
    }
    const all = (slices: SteadySlice[]) => slices.flatMap((slice) => slice.latenciesMs);
    const sum = (slices: SteadySlice[], key: 'bad' | 'elapsedMs') =>
      slices.reduce((total, slice) => total + slice[key], 0);
    const ackMs = all(sides.connector);
    const bareMs = all(sides.bare);
    const p50 = quantile(ackMs, 0.5);
    const p99 = quantile(ackMs, 0.99);
    const bareP99 = quantile(bareMs, 0.99);
    const bad = sum(sides.connector, 'bad');
    const sliceRatios = sides.connector.map(
      (slice, i) => quantile(sides.bare[i]?.latenciesMs ?? [], 0.99) / quantile(slice.latenciesMs, 0.99),
    );
    const acks: BenchResult = {
      module: MODULE,
      name: `interaction ack at ${INTERACTION_RATE}/s, slash commands (rate = answers/s; latency = signed POST → HTTP answer; ratio = bare p99 / p99)`,
      figure: manualMeasurement(
        `connector ${DISCORD_INTERACTIONS_PATH}: verify, queue the forward, {type:5}`,
        ackMs.length,
        sum(sides.connector, 'elapsedMs'),
        ackMs,
      ),
      baseline: manualMeasurement(
        'bare node:http answering {"type":5}',
        bareMs.length,
        sum(sides.bare, 'elapsedMs'),
        bareMs,
      ),
      ratio: p99 > 0 ? bareP99 / p99 : 0,
      ratioIqr: [quantile(sliceRatios, 0.25), quantile(sliceRatios, 0.75)],
      status: p99 <= ACK_TARGET_MS && bad === 0 ? 'PASS' : 'BELOW',
      note:
        `target: p99 <= ${ACK_TARGET_MS} ms and every answer {type:5} (Discord allows 3 s); p50 ` +
        `${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...ackMs).toFixed(1)} ms, ` +
        `${bad} other answers; ${INTERACTION_SLICES} × ${perSlice} interactions per side in alternating slices`,
    };
    console.log(
      `  discord-ingest: interaction ack at ${INTERACTION_RATE}/s: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ` +
        `max ${Math.max(...ackMs).toFixed(1)} ms over ${ackMs.length} (target p99 <= ${ACK_TARGET_MS} ms: ` +
        `${acks.status === 'PASS' ? 'met' : 'MISSED'}), ${bad} other answers; bare server p50 ` +
        `${quantile(bareMs, 0.5).toFixed(1)} ms, p99 ${bareP99.toFixed(1)} ms; p99 per connector slice ` +
        sides.connector.map((slice) => quantile(slice.latenciesMs, 0.99).toFixed(1)).join(' / '),
    );
    return [ingest, acks];
  } finally {
    for (const socket of visitors) socket.terminate();
    await bare.close();
    await transport.stop();
    await connector.stop();
    await discord.close();
    inbox.close();
    dir.remove();
  }
}

export const discordIngestBench: BenchModule = {
  name: MODULE,
  description:
    'Discord: MESSAGE_CREATE → completed outbox row vs the web chat path; interaction ack p99 at 200/s',
  run,
};
