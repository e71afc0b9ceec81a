import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorFrame } from '../../src/protocol/index.js';
import { type FakeDiscord, startFakeDiscord } from '../support/fake-discord.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';
import { type RedisServer, redisUnavailable, startRedis } from '../support/redis.js';
import { TestRelayClient } from '../support/test-gateway.js';
import { metricSum, sleep } from './fault-support.js';

/**
 * Discord's shard in a cluster (issue #17): two connector processes (A, B) on one Postgres and
 * Redis front one bot; exactly one of them runs its Gateway session (a lease). A gateway holds its
 * socket on the other one. 300 guild messages in three channels are dispatched while the instance
 * holding the shard is SIGKILLed a third of the way through: the other takes the lease over,
 * RESUMEs the saved session, Discord replays what followed the saved watermark, and every message
 * reaches the gateway, each as exactly one delivery, in order within its channel.
 */

const ENABLED = process.env.HERMES_FAULTS === '1';
const GUILD = '1100000000000000001';
const CHANNELS = ['1200000000000000001', '1200000000000000002', '1200000000000000003'];
const TOTAL = 300;
const KILL_AT = 100;

describe.runIf(ENABLED && postgresUnavailable === null && redisUnavailable === null)(
  'fault injection: Discord shard takeover (real processes)',
  () => {
    let dir: ReturnType<typeof tempDir>;
    let postgres: PostgresServer;
    let redis: RedisServer;
    let discord: FakeDiscord;
    let db: string;
    const connectors = new Map<string, RunningProcess & { url: string }>();
    let gateway: TestRelayClient;

    async function startConnector(instance: string): Promise<void> {
      const proc = startHermes(['connector', 'serve', '--port', '0', '--db', db], {
        RELAY_LOG_LEVEL: 'info',
        RELAY_REDIS_URL: redis.url,
        RELAY_INSTANCE_ID: instance,
        DISCORD_BOT_TOKEN: discord.token,
        DISCORD_APPLICATION_ID: discord.applicationId,
        DISCORD_PUBLIC_KEY: discord.publicKeyHex,
        DISCORD_API_ROOT: discord.apiRoot,
      });
      const match = await proc.waitFor(/connector listening on (http:\/\/127\.0\.0\.1:\d+)/, 45_000);
      connectors.set(instance, Object.assign(proc, { url: match[1] as string }));
    }

    const holds = async (instance: string) =>
      (await metricSum(connectors.get(instance)?.url ?? '', 'relay_platform_lease_held')) > 0;

    beforeAll(async () => {
      dir = tempDir('discord-faults');
      [postgres, redis, discord] = await Promise.all([
        startPostgres(),
        startRedis(),
        startFakeDiscord({ heartbeatIntervalMs: 1_000 }),
      ]);
      for (const id of CHANNELS)
        discord.addChannel({ id, type: 0, name: `channel-${id.slice(-1)}`, guild_id: GUILD });
      db = await postgres.createDatabase();
      const { accessToken } = await hermesJson<{ accessToken: string }>([
        'connector',
        'tenant',
        'create',
        'dc',
        '--db',
        db,
      ]);
      await startConnector('A');
      await discord.waitForReady();
      await startConnector('B');
      const response = await fetch(`${connectors.get('B')?.url}/relay/provision`, {
        method: 'POST',
        headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ gatewayId: 'gw-dc', platform: 'discord', botId: discord.applicationId }),
      });
      expect(response.status).toBe(200);
      const { secret } = (await response.json()) as { secret: string };
      const route = await hermes([
        'connector',
        'route',
        'add',
        '--tenant',
        'dc',
        '--platform',
        'discord',
        '--key',
        GUILD,
        '--gateway',
        'gw-dc',
        '--db',
        db,
      ]);
      expect(route.code, route.stderr).toBe(0);
      // The gateway's socket is on whichever instance does not run the shard, so the kill does not touch it.
      const holder = (await holds('A')) ? 'A' : 'B';
      const other = holder === 'A' ? 'B' : 'A';
      gateway = new TestRelayClient(
        `${connectors.get(other)?.url.replace('http', 'ws')}/relay`,
        'gw-dc',
        secret,
      );
      await gateway.connect();
      await gateway.hello('discord', discord.applicationId);
    }, 180_000);

    afterAll(async () => {
      gateway?.close();
      for (const proc of connectors.values()) await proc.stop().catch(() => undefined);
      await discord?.close();
      await redis?.stop();
      await postgres?.stop();
      dir?.remove();
    });

    it('moves the shard to the surviving instance, which resumes; every message is delivered once, in order', async () => {
      const holder = (await holds('A')) ? 'A' : 'B';
      const survivor = holder === 'A' ? 'B' : 'A';
      const sent: string[] = [];
      for (let i = 0; i < TOTAL; i += 1) {
        if (i === KILL_AT) connectors.get(holder)?.child.kill('SIGKILL');
        const message = discord.dispatchMessage({
          channel_id: CHANNELS[i % CHANNELS.length] as string,
          guild_id: GUILD,
          content: `m${i}`,
          author: { id: '700000000000000001', username: 'alice' },
        });
        sent.push(message.id);
        // A steady trickle, so the kill lands among dispatches the holder has and has not queued.
        if (i % 10 === 9) await sleep(20);
      }
      await until(
        () => holds(survivor).then((held) => held || undefined),
        30_000,
        `instance ${survivor} takes the lease`,
      );
      const deliveries = () =>
        gateway.frames.filter(
          (frame): frame is Extract<ConnectorFrame, { type: 'inbound' }> => frame.type === 'inbound',
        );
      await until(
        () => (new Set(deliveries().map((frame) => frame.event.message_id)).size >= TOTAL ? true : undefined),
        90_000,
        `all ${TOTAL} messages delivered`,
      );
      // Each message is one delivery: a redelivered frame repeats its bufferId, never a new one.
      const buffersOf = new Map<string, Set<string>>();
      for (const frame of deliveries()) {
        const id = String(frame.event.message_id);
        const set = buffersOf.get(id) ?? new Set<string>();
        set.add(String(frame.bufferId));
        buffersOf.set(id, set);
      }
      expect([...buffersOf.keys()].sort()).toEqual([...sent].sort());
      const doubled = [...buffersOf.entries()].filter(([, buffers]) => buffers.size > 1).map(([id]) => id);
      expect(doubled).toEqual([]);
      // In order within each channel (a session lives in one): first deliveries follow the dispatches.
      for (const channel of CHANNELS) {
        const firstSeen: string[] = [];
        for (const frame of deliveries()) {
          const id = String(frame.event.message_id);
          if (frame.event.source.chat_id === channel && !firstSeen.includes(id)) firstSeen.push(id);
        }
        expect(firstSeen).toEqual(sent.filter((_, i) => CHANNELS[i % CHANNELS.length] === channel));
      }
      expect(discord.gateway.resumes).toBeGreaterThanOrEqual(1);
      console.log(
        `[faults] discord takeover: ${TOTAL} dispatched, ${TOTAL} delivered once, holder ${holder} killed at ${KILL_AT}, resumes ${discord.gateway.resumes}, identifies ${discord.gateway.identifies}`,
      );
    });
  },
);
