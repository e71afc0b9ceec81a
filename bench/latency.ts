import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { addRoute } from '../src/connector/admin.js';
import { WebChatAdapter } from '../src/connector/platforms/webchat/adapter.js';
import { readRuntimeStatus } from '../src/home/status-file.js';
import { type BenchModule, type BenchResult, quantile } from './harness.js';
import type { LatencyReport } from './latency-gateway.js';
import {
  createBenchTenant,
  enrollBenchGateway,
  manualMeasurement,
  silentLog,
  sleep,
  startBareWsPair,
  startBenchConnector,
  tempDir,
  waitFor,
} from './support.js';

/**
 * Latency of the product's whole inbound path at a sustainable load: a visitor's message on the
 * web chat socket (`/chat/ws`) → the real `WebChatAdapter` (stored, then ingested) → the
 * connector's outbox (a real SQLite file) → `inbound` frame on the gateway's `/relay` socket → a
 * real gateway (`startGateway`, the current generation's socket path, its durable inbox in its
 * home) → the session manager → the echo agent's `run` called: the turn started. The echo
 * agent's reply travels back to the visitor as in production (and costs CPU like it).
 *
 * 1. Max load: a closed loop, one worker per visitor chat (each sends, waits for its turn to
 *    start, sends again), for a few seconds: turns started per second.
 * 2. At half that rate, an open loop (messages sent on a fixed schedule, round robin over the
 *    chats, never waiting for earlier ones), each timed from just before the visitor's
 *    `socket.send` to the echo agent's `run` being called. Baseline, in alternating slices: a
 *    bare `ws` client and server in the same process, the client sending a frame of the same size
 *    at the same rate and the server answering it, timed send → answer.
 *
 * Everything (visitors, connector, gateway, baseline) runs on the bench's one thread.
 */

const MODULE = 'latency';
const CHATS = 64;
const ROOM = 'bench';
const TARGET_P99_MS = 10;
const WARMUP_MS = 1_000;
const MAX_LOAD_MS = 3_000;
const SLICE_MS = 1_000;
/** Per side, alternating (path, bare, bare, path, …). */
const SLICES = 4;
/** A message whose turn has not started by then means the path is broken: fail, do not hang. */
const OP_TIMEOUT_MS = 15_000;
const TEXT_PREFIX = 'lat ';

const visitorId = (i: number): string => `latvisitor${String(i).padStart(4, '0')}`;

interface Pending {
  sentAt: number;
  resolve: (latencyMs: number) => void;
}

/** Where a message was when, after its send (ms, `performance.now()`), for the stage breakdown. */
interface Stages {
  sent: number;
  /** The web chat adapter calls `ingest`: the message is parsed and stored in the chat's history. */
  ingest?: number;
  /** `ingest` resolved: the outbox row is committed (and leased to this instance). */
  queued?: number;
  /** The gateway's inbox accepts it: the `inbound` frame arrived and was checked. */
  inbox?: number;
  /** The echo agent's `run` is called. */
  turn?: number;
}

const numberOf = (text: string): number =>
  text.startsWith(TEXT_PREFIX) ? Number(text.slice(TEXT_PREFIX.length)) : Number.NaN;

/** Record when each message reaches the adapter's `ingest`, and when that resolves. */
function observeIngests(adapter: WebChatAdapter, stages: Map<number, Stages>): void {
  const start = adapter.start.bind(adapter);
  adapter.start = (context) =>
    start({
      ...context,
      ingest: async (inbound) => {
        const entry = stages.get(numberOf(inbound.event.text ?? ''));
        if (entry) entry.ingest = nowMs();
        const outcome = await context.ingest(inbound);
        if (entry) entry.queued = nowMs();
        return outcome;
      },
    });
}

/** Compiled to dist/bench/latency-gateway.js: the gateway child's entry point. */
const GATEWAY_ENTRY = fileURLToPath(new URL('./latency-gateway.js', import.meta.url));

/** `process.hrtime` in ms: CLOCK_MONOTONIC, the same clock in the gateway child. */
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** CPU time (user + system) of process `pid` so far, in ms, from /proc (10 ms resolution). */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

interface OpenLoopSlice {
  latenciesMs: number[];
  elapsedMs: number;
  /** CPU time during the slice (user + system): the bench process (connector, visitors), the gateway. */
  cpuMs: number;
  gatewayCpuMs: number;
}

/** Linux CPU pressure (`some avg10`, % of time runnable tasks waited for a CPU), if readable. */
function cpuPressure(): number | undefined {
  try {
    const match = /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `rate`/s operations for `durationMs` on a fixed schedule (open loop: an operation never waits
 * for an earlier one). Timers fire about once a millisecond; each wake-up sends what is due.
 */
async function openLoop(
  rate: number,
  durationMs: number,
  one: (k: number) => Promise<number>,
  gatewayPid: number,
): Promise<OpenLoopSlice> {
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const latenciesMs: number[] = [];
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const cpu = process.cpuUsage();
  const gatewayCpu = processCpuMs(gatewayPid);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    for (; sent < due; sent++) pending.push(one(sent).then((ms) => void latenciesMs.push(ms)));
    if (sent < total) await sleep(1);
  }
  await Promise.all(pending);
  const used = process.cpuUsage(cpu);
  return {
    latenciesMs,
    elapsedMs: performance.now() - started,
    cpuMs: (used.user + used.system) / 1000,
    gatewayCpuMs: processCpuMs(gatewayPid) - gatewayCpu,
  };
}

async function run(): Promise<BenchResult[]> {
  const dir = tempDir('latency');
  const home = join(dir.path, 'home');
  mkdirSync(home, { recursive: true, mode: 0o700 });

  const webchat = new WebChatAdapter({
    log: silentLog,
    maxSocketsPerAddress: CHATS * 2,
    // The bench sends far faster than a person: the per-socket limit is lifted.
    rateLimit: { messages: 1_000_000, windowMs: 1 },
  });
  const stages = new Map<number, Stages>();
  observeIngests(webchat, stages);
  const { connector, store, relayUrl } = await startBenchConnector(join(dir.path, 'connector.db'), [webchat]);
  const tenant = await createBenchTenant(store, 'bench-latency');
  const gatewayId = 'gw-bench-latency';
  const secret = await enrollBenchGateway(store, tenant.tenantId, gatewayId, 'webchat');
  // No endpoint and no relevance policy: every message rides the gateway's socket.
  await addRoute(store, { tenantRef: tenant.tenantId, platform: 'webchat', routeKey: ROOM });

  const pending = new Map<number, Pending>();
  const turnStartedAt = new Map<number, number>();
  const replyMs: number[] = [];
  let stray = 0;
  const onReport = (reports: LatencyReport) => {
    for (const [kind, text, at] of reports) {
      const n = numberOf(text);
      if (kind === 'inbox') {
        const entry = stages.get(n);
        if (entry) entry.inbox = at;
        continue;
      }
      const waiter = pending.get(n);
      if (!waiter) {
        stray++;
        continue;
      }
      pending.delete(n);
      turnStartedAt.set(n, at);
      const entry = stages.get(n);
      if (entry) entry.turn = at;
      waiter.resolve(at - waiter.sentAt);
    }
  };

  // The gateway as `hermes gateway run` starts it, in its own process (as in production and in
  // `npm start`), with the two observers of latency-gateway.ts.
  const gateway = spawn(
    process.execPath,
    // E.g. LATENCY_GATEWAY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the gateway.
    [...(process.env.LATENCY_GATEWAY_NODE_ARGS?.split(' ').filter(Boolean) ?? []), GATEWAY_ENTRY],
    {
      env: {
        ...process.env,
        HERMES_HOME: home,
        GATEWAY_RELAY_URL: relayUrl,
        GATEWAY_RELAY_ID: gatewayId,
        GATEWAY_RELAY_SECRET: secret,
        GATEWAY_RELAY_DELIVERY_KEY: tenant.deliveryKey,
        GATEWAY_RELAY_PLATFORM: 'webchat',
        HERMES_AGENT: 'echo',
        HERMES_RESTART_DRAIN_TIMEOUT: '5',
      },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    },
  );
  let gatewayErrors = '';
  gateway.stderr?.on('data', (chunk: Buffer) => {
    gatewayErrors = (gatewayErrors + chunk.toString('utf8')).slice(-4000);
  });
  gateway.on('message', (reports) => onReport(reports as LatencyReport));
  const gatewayExited = new Promise<void>((resolve) => gateway.once('exit', () => resolve()));
  const gatewayPid = gateway.pid;
  const visitors: WebSocket[] = [];
  let replies = 0;
  try {
    if (gatewayPid === undefined) throw new Error(`${MODULE}: the gateway child did not start`);
    await waitFor(
      () => {
        if (gateway.exitCode !== null)
          throw new Error(`${MODULE}: the gateway child exited:\n${gatewayErrors}`);
        return readRuntimeStatus(home)?.platforms.relay?.state === 'connected';
      },
      15_000,
      'gateway connected',
    );
    const base = connector.url.replace(/^http/, 'ws');
    for (let i = 0; i < CHATS; i++) {
      const socket = new WebSocket(`${base}/chat/ws?room=${ROOM}&visitor=${visitorId(i)}`);
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      socket.on('message', (data: Buffer) => {
        const reply = /"role":"agent","text":"echo: lat (\d+)"/.exec(data.toString('utf8'));
        if (!reply) return;
        replies++;
        const at = turnStartedAt.get(Number(reply[1]));
        if (at !== undefined) replyMs.push(nowMs() - at);
      });
      visitors.push(socket);
    }

    let counter = 0;
    let tracing = false;
    const frameOf = (n: number): string => JSON.stringify({ type: 'message', text: `${TEXT_PREFIX}${n}` });
    /** One message in chat `chat`: resolves with ms from the send to its turn starting. */
    const message = (chat: number): Promise<number> => {
      const n = counter++;
      const frame = frameOf(n);
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(n);
          reject(new Error(`${MODULE}: message ${n} did not start a turn within ${OP_TIMEOUT_MS} ms`));
        }, OP_TIMEOUT_MS);
        const sentAt = nowMs();
        if (tracing) stages.set(n, { sent: sentAt });
        pending.set(n, {
          sentAt,
          resolve: (ms) => {
            clearTimeout(timer);
            resolve(ms);
          },
        });
        visitors[chat]?.send(frame);
      });
    };
    // The bare frame is the visitor's frame with the largest counter this run reaches.
    const bareBytes = Buffer.byteLength(frameOf(9_999_999));

    // 1. Max load: closed loop, one worker per chat.
    const closedLoop = async (durationMs: number): Promise<{ turns: number; elapsedMs: number }> => {
      let turns = 0;
      const started = performance.now();
      const until = started + durationMs;
      await Promise.all(
        Array.from({ length: CHATS }, async (_, chat) => {
          while (performance.now() < until) {
            await message(chat);
            turns++;
          }
        }),
      );
      return { turns, elapsedMs: performance.now() - started };
    };
    await closedLoop(WARMUP_MS);
    const max = await closedLoop(MAX_LOAD_MS);
    const maxRate = max.turns / (max.elapsedMs / 1000);
    const rate = Math.max(1, Math.round(maxRate / 2));

    // 2. Half load, open loop, alternating with the bare round trip at the same rate.
    const bareBench = await startBareWsPair(bareBytes, bareBytes, 'client');
    const bareOne = async (): Promise<number> => {
      const started = performance.now();
      await bareBench.exchange();
      return performance.now() - started;
    };
    const pathOne = (k: number): Promise<number> => message(k % CHATS);
    // Warm both at the rate (JIT, the schedule), unrecorded.
    await openLoop(rate, 300, pathOne, gatewayPid);
    await openLoop(rate, 300, bareOne, gatewayPid);
    const sides = { path: [] as OpenLoopSlice[], bare: [] as OpenLoopSlice[] };
    tracing = true;
    const pressureBefore = cpuPressure();
    for (let s = 0; s < SLICES * 2; s++) {
      const pathTurn = s % 4 === 0 || s % 4 === 3;
      const slice = await openLoop(rate, SLICE_MS, pathTurn ? pathOne : bareOne, gatewayPid);
      (pathTurn ? sides.path : sides.bare).push(slice);
    }
    tracing = false;
    const pressureAfter = cpuPressure();
    await bareBench.close();

    // Where the time goes: per stage, over the measured messages.
    const traced = [...stages.values()].filter(
      (e): e is Required<Stages> =>
        e.ingest !== undefined && e.queued !== undefined && e.inbox !== undefined && e.turn !== undefined,
    );
    const stage = (from: keyof Stages, to: keyof Stages) => {
      const values = traced.map((e) => e[to] - e[from]);
      return { p50: quantile(values, 0.5), p99: quantile(values, 0.99) };
    };
    const breakdown = {
      'socket → adapter ingest (parse, history store)': stage('sent', 'ingest'),
      'ingest → outbox committed': stage('ingest', 'queued'),
      'outbox → gateway inbox accept (claim, frame, socket, parse)': stage('queued', 'inbox'),
      'inbox accept → agent.run (session, history load)': stage('inbox', 'turn'),
    };
    const breakdownText = Object.entries(breakdown)
      .map(([what, { p50, p99 }]) => `${what} p50 ${p50.toFixed(2)} / p99 ${p99.toFixed(2)} ms`)
      .join('; ');

    const all = (slices: OpenLoopSlice[]) => slices.flatMap((slice) => slice.latenciesMs);
    const elapsed = (slices: OpenLoopSlice[]) => slices.reduce((sum, slice) => sum + slice.elapsedMs, 0);
    const pathMs = all(sides.path);
    const bareMs = all(sides.bare);
    const p50 = quantile(pathMs, 0.5);
    const p99 = quantile(pathMs, 0.99);
    const bareP50 = quantile(bareMs, 0.5);
    const bareP99 = quantile(bareMs, 0.99);
    const cpu = (slices: OpenLoopSlice[], key: 'cpuMs' | 'gatewayCpuMs' = 'cpuMs') =>
      slices.reduce((sum, slice) => sum + slice[key], 0);
    const cpuPerMessage = cpu(sides.path) / Math.max(1, pathMs.length);
    const gatewayCpuPerMessage = cpu(sides.path, 'gatewayCpuMs') / Math.max(1, pathMs.length);
    const bareCpuPerMessage = cpu(sides.bare) / Math.max(1, bareMs.length);
    const pressure = pressureBefore === undefined ? 'n/a' : `${pressureBefore}% → ${pressureAfter ?? '?'}%`;
    const sliceRatios = sides.path.map(
      (slice, i) => quantile(sides.bare[i]?.latenciesMs ?? [], 0.99) / quantile(slice.latenciesMs, 0.99),
    );
    const result: BenchResult & { detail: Record<string, number> } = {
      module: MODULE,
      name:
        `web chat message → echo agent turn started at half of max load, ${rate}/s over ${CHATS} chats ` +
        `(rate = turns started/s; ratio = bare p99 / p99)`,
      figure: manualMeasurement(
        'visitor /chat/ws → WebChatAdapter → outbox → socket → gateway inbox → session → agent.run',
        pathMs.length,
        elapsed(sides.path),
        pathMs,
      ),
      baseline: manualMeasurement(
        `bare ws round trip, ${bareBytes} B each way`,
        bareMs.length,
        elapsed(sides.bare),
        bareMs,
      ),
      ratio: p99 > 0 ? bareP99 / p99 : 0,
      ratioIqr: [quantile(sliceRatios, 0.25), quantile(sliceRatios, 0.75)],
      status: p99 <= TARGET_P99_MS ? 'PASS' : 'BELOW',
      note:
        `target: p99 <= ${TARGET_P99_MS} ms at half of max load; max load ${maxRate.toFixed(0)} turns/s ` +
        `(closed loop, ${CHATS} chats, ${MAX_LOAD_MS / 1000} s); p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, ` +
        `max ${Math.max(...pathMs).toFixed(2)} ms; bare ws p50 ${bareP50.toFixed(3)} ms, p99 ${bareP99.toFixed(3)} ms; ` +
        `p99 per slice ${sides.path.map((slice) => quantile(slice.latenciesMs, 0.99).toFixed(1)).join(' / ')} ms; ` +
        `CPU per message: connector + visitors ${cpuPerMessage.toFixed(3)} ms, gateway ${gatewayCpuPerMessage.toFixed(2)} ms ` +
        `(bare ${bareCpuPerMessage.toFixed(3)}); CPU pressure ${pressure}; ` +
        `${SLICES} × ${SLICE_MS / 1000} s slices per side, alternating`,
      detail: {
        maxTurnsPerSec: Number(maxRate.toFixed(1)),
        rate,
        p50Ms: Number(p50.toFixed(3)),
        p99Ms: Number(p99.toFixed(3)),
        maxMs: Number(Math.max(...pathMs).toFixed(3)),
        bareP50Ms: Number(bareP50.toFixed(3)),
        bareP99Ms: Number(bareP99.toFixed(3)),
        cpuMsPerMessage: Number(cpuPerMessage.toFixed(3)),
        gatewayCpuMsPerMessage: Number(gatewayCpuPerMessage.toFixed(3)),
        bareCpuMsPerMessage: Number(bareCpuPerMessage.toFixed(3)),
        ...(pressureBefore === undefined ? {} : { cpuPressureBefore: pressureBefore }),
        ...(pressureAfter === undefined ? {} : { cpuPressureAfter: pressureAfter }),
        ...Object.fromEntries(
          Object.values(breakdown).flatMap((value, i) => [
            [`stage${i + 1}P50Ms`, Number(value.p50.toFixed(3))],
            [`stage${i + 1}P99Ms`, Number(value.p99.toFixed(3))],
          ]),
        ),
      },
    };
    console.log(
      `  latency: max load ${maxRate.toFixed(0)} turns/s (closed loop, ${CHATS} chats); at ${rate}/s: ` +
        `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${Math.max(...pathMs).toFixed(2)} ms over ` +
        `${pathMs.length} (target p99 <= ${TARGET_P99_MS} ms: ${result.status === 'PASS' ? 'met' : 'MISSED'}); ` +
        `bare ws p50 ${bareP50.toFixed(3)} ms, p99 ${bareP99.toFixed(3)} ms; p99 per slice ` +
        `${sides.path.map((slice) => quantile(slice.latenciesMs, 0.99).toFixed(1)).join(' / ')}; ` +
        `${replies} replies seen, ${stray} turns for no pending message; turn started → reply at the visitor p50 ${quantile(replyMs, 0.5).toFixed(1)} ms, p99 ${quantile(replyMs, 0.99).toFixed(1)} ms`,
    );
    console.log(`  latency: stages over ${traced.length} messages: ${breakdownText}`);
    console.log(
      `  latency: CPU per message: bench process (connector, visitors) ${cpuPerMessage.toFixed(3)} ms ` +
        `(${((100 * cpu(sides.path)) / elapsed(sides.path)).toFixed(0)}% of a core), gateway child ` +
        `${gatewayCpuPerMessage.toFixed(3)} ms (${((100 * cpu(sides.path, 'gatewayCpuMs')) / elapsed(sides.path)).toFixed(0)}%), ` +
        `bare ws ${bareCpuPerMessage.toFixed(3)} ms; CPU pressure (some avg10) ${pressure}`,
    );
    return [result];
  } finally {
    for (const socket of visitors) socket.terminate();
    if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGTERM');
    await gatewayExited;
    await connector.stop();
    dir.remove();
  }
}

export const latencyBench: BenchModule = {
  name: MODULE,
  description:
    'latency: web chat message → echo agent turn started, p99 at half of max load vs the bare ws round trip',
  run,
};
