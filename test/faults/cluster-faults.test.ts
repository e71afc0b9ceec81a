import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { freePort } from '../support/ports.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { hermesJson, type RunningProcess, startHermes, tempDir, until } from '../support/processes.js';
import { type RedisServer, redisUnavailable, startRedis } from '../support/redis.js';
import { startTcpBalancer, type TcpBalancer } from '../support/tcp-balancer.js';
import {
  AGENT_SCRIPT,
  type AgentLine,
  enrollFaultGateway,
  metricSum,
  ROUND_MS,
  readAgentLines,
  report,
  sleep,
  tally,
  Visitor,
  WEBCHAT_RATE_LIMIT,
} from './fault-support.js';

/**
 * The multi-instance fault case (issues #8, #9): two connector processes (A, B) on one private
 * Postgres and Redis, behind one address (a TCP balancer that skips a dead backend). Two real
 * gateways dial that address: one outbound-only (its events travel as `inbound` frames on its
 * socket, sent by whichever instance holds it), one with a signed-delivery endpoint. Web-chat
 * visitors, spread over A and B by the balancer, send 1,000 messages in 50 sessions; A is
 * SIGKILLed a quarter of the way through. Visitors that were on A reconnect (landing on B) and go
 * on; the gateway that was on A reconnects to B; B releases A's outbox claims once A's heartbeat
 * lapses. Every acknowledged message must reach an agent exactly once, in per-session order.
 */

const ENABLED = process.env.HERMES_FAULTS === '1';

describe.runIf(ENABLED && postgresUnavailable === null && redisUnavailable === null)(
  'fault injection: several connector instances (real processes)',
  () => {
    let dir: ReturnType<typeof tempDir>;
    let postgres: PostgresServer;
    let redis: RedisServer;
    let balancer: TcpBalancer;
    let db: string;
    let agentLog: string;
    const connectors = new Map<string, RunningProcess & { url: string }>();
    const gateways: { home: string; inboundPort: number; proc: RunningProcess }[] = [];
    const visitors: Visitor[] = [];

    const agentLines = (): AgentLine[] => readAgentLines(agentLog);
    const metric = metricSum;

    async function startConnector(instance: string, port: number): Promise<void> {
      const proc = startHermes(['connector', 'serve', '--port', String(port), '--db', db], {
        RELAY_LOG_LEVEL: 'warn',
        // Every visitor of the suite connects from 127.0.0.1 (through the balancer).
        RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '1000',
        RELAY_WEBCHAT_RATE_LIMIT: WEBCHAT_RATE_LIMIT,
        RELAY_REDIS_URL: redis.url,
        RELAY_INSTANCE_ID: instance,
      });
      const match = await proc.waitFor(/connector listening on (http:\/\/127\.0\.0\.1:\d+)/, 45_000);
      connectors.set(instance, Object.assign(proc, { url: match[1] as string }));
    }

    async function startGateway(
      tenant: string,
      gatewayId: string,
      accessToken: string,
    ): Promise<{ home: string; inboundPort: number }> {
      const home = join(dir.path, gatewayId);
      const inboundPort = await freePort();
      const { token } = await hermesJson<{ token: string }>([
        'connector',
        'enroll-token',
        'create',
        '--tenant',
        tenant,
        '--db',
        db,
      ]);
      const env = await enrollFaultGateway({
        home,
        accessToken,
        enrollmentToken: token,
        connectorUrl: balancer.url,
        gatewayId,
        inboundPort,
        agentScript: join(dir.path, 'agent.mjs'),
        agentLog,
      });
      const proc = startHermes(['gateway', 'run'], env);
      await proc.waitFor(/gateway running for/, 30_000);
      await until(
        () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
        60_000,
        `${gatewayId} connected`,
      );
      gateways.push({ home, inboundPort, proc });
      return { home, inboundPort };
    }

    /** Outbox empty on the live instances, no turn running, agent log quiet for `quietMs`. */
    async function settle(timeoutMs: number, quietMs = 3_000): Promise<boolean> {
      const started = Date.now();
      let lastCount = -1;
      let quietSince = Date.now();
      while (Date.now() - started < timeoutMs) {
        const count = agentLines().length;
        if (count !== lastCount) {
          lastCount = count;
          quietSince = Date.now();
        }
        const live = [...connectors.values()].filter((c) => c.child.exitCode === null && !c.child.signalCode);
        const depth = await metric(live[0]?.url ?? '', 'relay_outbox_depth').catch(() => -1);
        const active = gateways.reduce((sum, g) => sum + (readRuntimeStatus(g.home)?.active_agents ?? 1), 0);
        if (depth === 0 && active === 0 && Date.now() - quietSince >= quietMs) return true;
        await sleep(250);
      }
      return false;
    }

    beforeAll(async () => {
      dir = tempDir('cluster-faults');
      agentLog = join(dir.path, 'agent-log.jsonl');
      writeFileSync(join(dir.path, 'agent.mjs'), AGENT_SCRIPT);
      writeFileSync(agentLog, '');
      [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
      db = await postgres.createDatabase();
      const [portA, portB] = [await freePort(), await freePort()];
      await startConnector('A', portA);
      await startConnector('B', portB);
      balancer = await startTcpBalancer([portA, portB]);

      const sock = await hermesJson<{ accessToken: string }>([
        'connector',
        'tenant',
        'create',
        'sock',
        '--db',
        db,
      ]);
      const http = await hermesJson<{ accessToken: string }>([
        'connector',
        'tenant',
        'create',
        'http',
        '--db',
        db,
      ]);
      await startGateway('sock', 'gw-sock', sock.accessToken);
      const { inboundPort } = await startGateway('http', 'gw-http', http.accessToken);
      const route = (args: string[]) =>
        hermesJson(['connector', 'route', 'add', '--platform', 'webchat', ...args, '--db', db]);
      await route(['--tenant', 'sock', '--key', 'sock', '--gateway', 'gw-sock']);
      await route(['--tenant', 'http', '--key', 'http', '--endpoint', `http://127.0.0.1:${inboundPort}`]);
    }, 240_000);

    afterAll(async () => {
      for (const visitor of visitors) visitor.close();
      for (const gateway of gateways) await gateway.proc.stop('SIGKILL');
      for (const connector of connectors.values()) await connector.stop('SIGKILL');
      await balancer?.stop();
      await redis?.stop();
      await postgres?.stop();
      dir?.remove();
    });

    it('one instance SIGKILLed during 1,000 events in 50 sessions: every acknowledged event reaches an agent once, in order', async () => {
      const list: Visitor[] = [];
      for (let i = 0; i < 50; i++) {
        const room = i % 2 === 0 ? 'sock' : 'http';
        list.push(new Visitor(balancer.url, room, `cl-visitor-${String(i).padStart(3, '0')}`));
      }
      visitors.push(...list);
      await Promise.all(list.map((v) => v.connect()));

      const sent: string[] = [];
      let killedAt = 0;
      for (let round = 0; round < 20; round++) {
        const started = Date.now();
        // Visitors whose instance died come back through the balancer (landing on B).
        for (let attempt = 0; attempt < 5 && list.some((v) => !v.open); attempt++) {
          await Promise.all(list.filter((v) => !v.open).map((v) => v.connect().catch(() => undefined)));
          if (list.some((v) => !v.open)) await sleep(100);
        }
        list.forEach((visitor, v) => {
          const text = `cl-v${String(v).padStart(3, '0')}-m${String(round).padStart(2, '0')}`;
          if (visitor.say(text)) sent.push(text);
        });
        if (round === 5) {
          // Mid-flight: A has acknowledged this round and holds deliveries it has not finished.
          await sleep(300);
          await connectors.get('A')?.stop('SIGKILL');
          killedAt = Date.now();
        }
        await sleep(Math.max(0, ROUND_MS - (Date.now() - started)));
      }
      const settled = await settle(180_000);
      const acked = new Set(list.flatMap((v) => [...v.acked]));
      const lines = agentLines();
      const t = tally(lines, 'cl-', acked);
      const ofSent = tally(lines, 'cl-', sent);
      const b = connectors.get('B');
      const released = b ? await metric(b.url, 'relay_cluster_claims_released_total') : -1;
      report(
        'connector instance A SIGKILLed (2 instances, Postgres + Redis)',
        t,
        `${sent.length} sent on open sockets, ${acked.size} acknowledged, ${ofSent.delivered} of the sent reached an agent, ` +
          `${ofSent.duplicates} duplicates among all; B released ${released} claims of A; settled ${settled} ` +
          `${Math.round((Date.now() - killedAt) / 1000)} s after the kill` +
          (t.lost ? `, lost e.g. ${t.lostTexts.slice(0, 5).join(' ')}` : ''),
      );
      expect(sent.length).toBeGreaterThanOrEqual(950);
      // What visitors on A sent after the kill and before their socket noticed is never
      // acknowledged (and not required to arrive): about 25 visitors × a round or four. The
      // invariants are below: every acknowledged message arrives, once, in order.
      expect(acked.size).toBeGreaterThanOrEqual(800);
      expect(ofSent.duplicates).toBe(0);
      expect(ofSent.orderViolations).toEqual([]);
      expect(t.lost).toBe(0);
    });
  },
);
