import { writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { HEADER_DELIVERY_ID } from '../../src/protocol/index.js';
import { type CuttableProxy, startCuttableProxy } from '../support/cuttable-proxy.js';
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
  readAgentLines,
  report,
  sleep,
  tally,
  Visitor,
  WEBCHAT_RATE_LIMIT,
} from './fault-support.js';

/**
 * Fencing (#18): two connector instances on one Postgres and Redis; instance 1 reaches Redis
 * through a proxy that is cut for 20 s while it keeps Postgres. Its heartbeat lapses, so instance
 * 2's reaper releases instance 1's outbox claims and delivers those rows itself; instance 1 must
 * claim and deliver nothing meanwhile (its own heartbeat is not current), or a row would be sent
 * by both. Web-chat visitors (spread over both instances) send a steady stream the whole time to a
 * gateway with a signed-delivery endpoint; an HTTP proxy in front of that endpoint counts every
 * POST by delivery id and, around the cut, holds requests 9 s (under the 10 s delivery timeout),
 * so instance 1 still holds claims in flight when instance 2 releases them. The agent must see
 * every acknowledged message once.
 */

const ENABLED = process.env.HERMES_FAULTS === '1';
const CUT_MS = 20_000;
const HOLD_MS = 9_000;
const ROUND_MS = 500;
const VISITORS = 12;

interface CountingProxy {
  url: string;
  /** POSTs seen per delivery id (the wire's view: a repeat is one id sent twice). */
  posts: Map<string, number>;
  /** Requests arriving while true are held HOLD_MS before they are passed on. */
  holding: boolean;
  stop(): Promise<void>;
}

async function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  const proxy: CountingProxy = { url: '', posts: new Map(), holding: false, stop: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const id = req.headers[HEADER_DELIVERY_ID];
      if (typeof id === 'string') proxy.posts.set(id, (proxy.posts.get(id) ?? 0) + 1);
      const forward = () => {
        const upstream = httpRequest(
          { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => res.writeHead(502).end());
        upstream.end(Buffer.concat(chunks));
      };
      if (proxy.holding) setTimeout(forward, HOLD_MS);
      else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

/** Times of the fencing log lines of an instance (pino JSON on its output). */
function fencingSpells(output: string): { lost: number[]; back: number[] } {
  const lost: number[] = [];
  const back: number[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; time?: number };
      if (entry.msg?.startsWith('this instance lost its cluster heartbeat')) lost.push(entry.time ?? 0);
      if (entry.msg?.startsWith('cluster heartbeat back')) back.push(entry.time ?? 0);
    } catch {
      // not a log line
    }
  }
  return { lost, back };
}

describe.runIf(ENABLED && postgresUnavailable === null && redisUnavailable === null)(
  'fault injection: an instance cut off from Redis is fenced (real processes)',
  () => {
    let dir: ReturnType<typeof tempDir>;
    let postgres: PostgresServer;
    let redis: RedisServer;
    let redisLink: CuttableProxy;
    let balancer: TcpBalancer;
    let counting: CountingProxy;
    let db: string;
    let agentLog: string;
    const connectors = new Map<string, RunningProcess & { url: string }>();
    const gateways: { home: string; proc: RunningProcess }[] = [];
    const visitors: Visitor[] = [];

    const agentLines = (): AgentLine[] => readAgentLines(agentLog);

    async function startConnector(instance: string, port: number, redisUrl: string): Promise<void> {
      const proc = startHermes(['connector', 'serve', '--port', String(port), '--db', db], {
        // Instance 1 at info: its "heartbeat back" line tells how long it was fenced.
        RELAY_LOG_LEVEL: instance === 'one' ? 'info' : 'warn',
        RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '1000',
        RELAY_WEBCHAT_RATE_LIMIT: WEBCHAT_RATE_LIMIT,
        RELAY_REDIS_URL: redisUrl,
        RELAY_INSTANCE_ID: instance,
      });
      const match = await proc.waitFor(/connector listening on (http:\/\/127\.0\.0\.1:\d+)/, 45_000);
      connectors.set(instance, Object.assign(proc, { url: match[1] as string }));
    }

    /** Outbox empty, no turn running, agent log quiet for `quietMs`. */
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
        const depth = await metricSum(connectors.get('two')?.url ?? '', 'relay_outbox_depth').catch(() => -1);
        const active = gateways.reduce((sum, g) => sum + (readRuntimeStatus(g.home)?.active_agents ?? 1), 0);
        if (depth === 0 && active === 0 && Date.now() - quietSince >= quietMs) return true;
        await sleep(250);
      }
      return false;
    }

    beforeAll(async () => {
      dir = tempDir('fencing-faults');
      agentLog = join(dir.path, 'agent-log.jsonl');
      writeFileSync(join(dir.path, 'agent.mjs'), AGENT_SCRIPT);
      writeFileSync(agentLog, '');
      [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
      db = await postgres.createDatabase();
      redisLink = await startCuttableProxy(redis.port, 'redis');
      const [portOne, portTwo] = [await freePort(), await freePort()];
      await startConnector('one', portOne, redisLink.url);
      await startConnector('two', portTwo, redis.url);
      balancer = await startTcpBalancer([portOne, portTwo]);

      const tenant = await hermesJson<{ accessToken: string }>([
        'connector',
        'tenant',
        'create',
        'fence',
        '--db',
        db,
      ]);
      const home = join(dir.path, 'gw-fence');
      const inboundPort = await freePort();
      const { token } = await hermesJson<{ token: string }>([
        'connector',
        'enroll-token',
        'create',
        '--tenant',
        'fence',
        '--db',
        db,
      ]);
      const env = await enrollFaultGateway({
        home,
        accessToken: tenant.accessToken,
        enrollmentToken: token,
        connectorUrl: balancer.url,
        gatewayId: 'gw-fence',
        inboundPort,
        agentScript: join(dir.path, 'agent.mjs'),
        agentLog,
      });
      const proc = startHermes(['gateway', 'run'], env);
      await proc.waitFor(/gateway running for/, 30_000);
      await until(
        () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
        60_000,
        'gw-fence connected',
      );
      gateways.push({ home, proc });
      counting = await startCountingProxy(inboundPort);
      await hermesJson([
        'connector',
        'route',
        'add',
        '--platform',
        'webchat',
        '--tenant',
        'fence',
        '--key',
        'fence',
        '--endpoint',
        counting.url,
        '--db',
        db,
      ]);
    }, 240_000);

    afterAll(async () => {
      for (const visitor of visitors) visitor.close();
      for (const gateway of gateways) await gateway.proc.stop('SIGKILL');
      for (const connector of connectors.values()) await connector.stop('SIGKILL');
      await balancer?.stop();
      await counting?.stop();
      await redisLink?.stop();
      await redis?.stop();
      await postgres?.stop();
      dir?.remove();
    });

    it('instance 1 cut off from Redis for 20 s (still on Postgres): 0 duplicates and 0 lost to the agent', async () => {
      const list: Visitor[] = [];
      for (let i = 0; i < VISITORS; i++)
        list.push(new Visitor(balancer.url, 'fence', `fe-visitor-${String(i).padStart(3, '0')}`));
      visitors.push(...list);
      await Promise.all(list.map((v) => v.connect()));

      const sent: string[] = [];
      let round = 0;
      const sendRound = () => {
        list.forEach((visitor, v) => {
          const text = `fe-v${String(v).padStart(3, '0')}-m${String(round).padStart(3, '0')}`;
          if (visitor.say(text)) sent.push(text);
        });
        round++;
      };
      const stream = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const started = Date.now();
          sendRound();
          await sleep(Math.max(0, ROUND_MS - (Date.now() - started)));
        }
      };

      await stream(5_000);
      // The cut: instance 1 loses Redis (and keeps Postgres). The endpoint is slow meanwhile, so
      // attempts instance 1 started just before it is fenced are still in flight when instance 2
      // releases their claims.
      counting.holding = true;
      redisLink.cut();
      const cutAt = Date.now();
      const one = connectors.get('one') as RunningProcess & { url: string };
      const two = connectors.get('two') as RunningProcess & { url: string };
      const attemptsOfOne = () => metricSum(one.url, 'relay_deliveries_total');
      // While the cut lasts: once instance 1 has been fenced for longer than the 10 s delivery
      // timeout, every attempt it started before is over, so its attempt counter must stand still
      // until the heal (a run without fencing has no fenced line: then from 15 s after the cut).
      const sampling = (async () => {
        const fencedAt = await until(
          () => fencingSpells(one.output()).lost[0],
          CUT_MS - 10_500,
          'instance 1 fenced',
        ).catch(() => cutAt + 5_000);
        await sleep(Math.max(0, fencedAt + 10_500 - Date.now()));
        const from = await attemptsOfOne();
        const fromAt = Date.now();
        await sleep(Math.max(0, cutAt + CUT_MS - 200 - Date.now()));
        return { attempts: (await attemptsOfOne()) - from, seconds: (Date.now() - fromAt) / 1000 };
      })();
      await stream(8_000);
      counting.holding = false;
      await stream(CUT_MS - (Date.now() - cutAt));
      const whileFenced = await sampling;
      redisLink.heal();
      const healedAt = Date.now();
      await stream(8_000);

      // Instance 1 says it is back (its heartbeat renewed), then everything drains.
      // (Asserted below, after the line is printed: a run without fencing has no such line.)
      await until(
        () => fencingSpells(one.output()).back.length > 0 || undefined,
        60_000,
        'instance 1 back',
      ).catch(() => undefined);
      const settled = await settle(180_000);

      const acked = new Set(list.flatMap((v) => [...v.acked]));
      const lines = agentLines();
      const t = tally(lines, 'fe-', acked);
      const ofSent = tally(lines, 'fe-', sent);
      const released = await metricSum(two.url, 'relay_cluster_claims_released_total');
      const spells = fencingSpells(one.output());
      const fencedAt = spells.lost[0] ?? 0;
      const backAt = spells.back.find((time) => time >= fencedAt) ?? 0;
      let repeats = 0;
      for (const count of counting.posts.values()) repeats += count - 1;
      report(
        'fencing',
        t,
        `${sent.length} sent, ${acked.size} acknowledged, ${ofSent.delivered} of the sent reached the agent, ` +
          `${ofSent.duplicates} duplicates among all; Redis cut for ${Math.round((healedAt - cutAt) / 1000)} s, ` +
          (fencedAt > 0
            ? `instance 1 fenced ${((fencedAt - cutAt) / 1000).toFixed(1)} s after the cut for ` +
              `${((backAt - fencedAt) / 1000).toFixed(1)} s `
            : 'instance 1 never fenced ') +
          `(${spells.lost.length} spell(s)); instance 2 released ` +
          `${released} of its claims; ${counting.posts.size} delivery ids posted, ${repeats} posted again ` +
          `(dropped by the gateway by id); instance 1 finished ${whileFenced.attempts} attempts in the ` +
          `${whileFenced.seconds.toFixed(1)} s before the heal; settled ${settled}` +
          (t.lost ? `; lost e.g. ${t.lostTexts.slice(0, 5).join(' ')}` : ''),
      );
      expect(spells.lost.length).toBeGreaterThanOrEqual(1);
      expect(fencedAt).toBeGreaterThan(cutAt);
      expect(backAt).toBeGreaterThan(fencedAt);
      expect(whileFenced.seconds).toBeGreaterThan(1);
      expect(whileFenced.attempts).toBe(0);
      expect(acked.size).toBeGreaterThanOrEqual(sent.length * 0.9);
      expect(ofSent.duplicates).toBe(0);
      expect(t.duplicates).toBe(0);
      expect(t.lost).toBe(0);
      expect(ofSent.orderViolations).toEqual([]);
    });
  },
);
