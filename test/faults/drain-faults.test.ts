import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TEXTS } from '../../src/gateway/sessions.js';
import { clearDrainRequest, writeDrainRequest } from '../../src/home/drain-control.js';
import { readRuntimeStatus } from '../../src/home/status-file.js';
import { freePort } from '../support/ports.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  startHermes,
  tempDir,
  until,
} from '../support/processes.js';
import { type AgentLine, enrollFaultGateway, metricSum, readAgentLines, sleep } from './fault-support.js';

/**
 * Drain with queued messages (issue #18): every chat has a turn running and several messages
 * queued behind it on the gateway when an external drain begins. The running turns finish and are
 * answered; every queued message — and one sent during the drain — is refused with the reference
 * drain text, never answered as a normal turn; after the drain is cancelled a new message is a
 * normal turn again. Real processes: `hermes connector serve`, `hermes gateway run` (outbound-only,
 * deliveries over its socket) with a command agent that records each turn's start and then blocks
 * until the test releases it, so the drain lands while every first turn is still running.
 */

const ENABLED = process.env.HERMES_FAULTS === '1';
const CHATS = 20;
const QUEUED_PER_CHAT = 5;

const BLOCKING_AGENT = `import { appendFileSync, existsSync } from 'node:fs';
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const { session_key, event } = JSON.parse(input);
  appendFileSync(process.env.FAULT_AGENT_LOG, JSON.stringify({ session: session_key, chat: event.source.chat_id, text: event.text }) + '\\n');
  const wait = () => (existsSync(process.env.FAULT_AGENT_RELEASE) ? process.stdout.write('ok ' + event.text) : setTimeout(wait, 50));
  wait();
});
`;

/** A web-chat visitor that keeps every agent message it is shown. */
class Chat {
  readonly agentTexts: string[] = [];
  readonly acked = new Set<string>();
  private readonly ws: WebSocket;
  private readonly ids = new Map<string, string>();

  constructor(
    baseUrl: string,
    readonly visitor: string,
  ) {
    this.ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/chat/ws?room=drain&visitor=${visitor}`);
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as {
        type: string;
        message?: { id: string; role: string; text: string };
        message_id?: string;
      };
      if (frame.type === 'message' && frame.message?.role === 'user')
        this.ids.set(frame.message.id, frame.message.text);
      if (frame.type === 'message' && frame.message?.role === 'agent')
        this.agentTexts.push(frame.message.text);
      if (frame.type === 'ack' && frame.message_id !== undefined) {
        const text = this.ids.get(frame.message_id);
        if (text !== undefined) this.acked.add(text);
      }
    });
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', () => reject(new Error(`web chat socket for ${this.visitor} closed`)));
    });
  }

  say(text: string): void {
    this.ws.send(JSON.stringify({ type: 'message', text }));
  }

  close(): void {
    this.ws.terminate();
  }
}

describe.runIf(ENABLED)('fault injection: drain with queued messages (real processes)', () => {
  const dir = tempDir('drain-faults');
  const db = join(dir.path, 'connector.db');
  const home = join(dir.path, 'home');
  const agentLog = join(dir.path, 'agent-log.jsonl');
  const release = join(dir.path, 'release');
  let connector: RunningProcess & { url: string };
  let gateway: RunningProcess;
  const chats: Chat[] = [];
  const agentLines = (): AgentLine[] => readAgentLines(agentLog);

  beforeAll(async () => {
    const agentScript = join(dir.path, 'agent.mjs');
    writeFileSync(agentScript, BLOCKING_AGENT);
    writeFileSync(agentLog, '');
    const { accessToken } = await hermesJson<{ accessToken: string }>([
      'connector',
      'tenant',
      'create',
      'drain',
      '--db',
      db,
    ]);
    const { token } = await hermesJson<{ token: string }>([
      'connector',
      'enroll-token',
      'create',
      '--tenant',
      'drain',
      '--db',
      db,
    ]);
    const route = await hermes([
      'connector',
      'route',
      'add',
      '--tenant',
      'drain',
      '--platform',
      'webchat',
      '--key',
      'drain',
      '--db',
      db,
    ]);
    expect(route.code, route.stderr).toBe(0);
    connector = await startConnectorProcess(db, { RELAY_WEBCHAT_MAX_SOCKETS_PER_IP: '1000' });
    const env = await enrollFaultGateway({
      home,
      accessToken,
      enrollmentToken: token,
      connectorUrl: connector.url,
      gatewayId: 'gw-drain',
      inboundPort: await freePort(),
      agentScript,
      agentLog,
      // Outbound-only: deliveries arrive on the gateway's socket.
      extra: { GATEWAY_RELAY_INBOUND_PORT: '', FAULT_AGENT_RELEASE: release },
    });
    gateway = startHermes(['gateway', 'run'], env);
    await gateway.waitFor(/gateway running for/, 30_000);
    await until(
      () => readRuntimeStatus(home)?.platforms.relay?.state === 'connected' || undefined,
      60_000,
      'relay connected',
    );
  }, 120_000);

  afterAll(async () => {
    for (const chat of chats) chat.close();
    writeFileSync(release, '');
    await gateway?.stop();
    await connector?.stop();
    dir.remove();
  });

  it('answers the running turns, refuses every queued message with the drain text, and serves again after the drain', async () => {
    for (let i = 0; i < CHATS; i++)
      chats.push(new Chat(connector.url, `drain-visitor-${String(i).padStart(2, '0')}`));
    await Promise.all(chats.map((chat) => chat.opened()));

    // One running turn per chat…
    for (const [i, chat] of chats.entries()) chat.say(`c${i}-m0`);
    await until(() => (agentLines().length >= CHATS ? true : undefined), 60_000, 'every first turn running');
    // …and messages queued behind it, delivered to the gateway (the outbox is empty again).
    chats.forEach((chat, i) => {
      for (let m = 1; m <= QUEUED_PER_CHAT; m++) chat.say(`c${i}-m${m}`);
    });
    await until(
      () => (chats.every((chat) => chat.acked.size === 1 + QUEUED_PER_CHAT) ? true : undefined),
      60_000,
      'every queued message committed by the connector',
    );
    await until(
      async () => ((await metricSum(connector.url, 'relay_outbox_depth')) === 0 ? true : undefined),
      60_000,
      'outbox empty',
    );

    writeDrainRequest(home);
    await until(
      () => (readRuntimeStatus(home)?.gateway_state === 'draining' ? true : undefined),
      30_000,
      'gateway draining',
    );
    // A message sent during the drain is refused too.
    for (const [i, chat] of chats.entries()) chat.say(`c${i}-during`);
    expect(existsSync(release)).toBe(false);
    writeFileSync(release, '');

    const answersEach = 1 + QUEUED_PER_CHAT + 1;
    await until(
      () => (chats.every((chat) => chat.agentTexts.length >= answersEach) ? true : undefined),
      120_000,
      'every message answered or refused',
    );
    await sleep(1_000);
    const firstTurns = agentLines().map((line) => line.text);
    const normal = chats.flatMap((chat) => chat.agentTexts.filter((text) => text.startsWith('ok ')));
    const refused = chats.flatMap((chat) => chat.agentTexts.filter((text) => text === TEXTS.drainRefusal));
    const queuedAnswered = firstTurns.filter((text) => !/-m0$/.test(text));

    clearDrainRequest(home);
    await until(
      () => (readRuntimeStatus(home)?.gateway_state === 'running' ? true : undefined),
      30_000,
      'drain cancelled',
    );
    chats[0]?.say('c0-after');
    await until(
      () => (chats[0]?.agentTexts.includes('ok c0-after') ? true : undefined),
      60_000,
      'a new turn after the drain',
    );

    console.log(
      `[fault] drain with queued messages: ${CHATS} running turns answered ${normal.length}, ${CHATS * QUEUED_PER_CHAT} queued + ${CHATS} sent during the drain, refused ${refused.length}, answered as normal turns ${queuedAnswered.length}; after the drain a new turn was answered`,
    );
    expect(queuedAnswered).toEqual([]);
    expect(normal.sort()).toEqual(chats.map((_, i) => `ok c${i}-m0`).sort());
    expect(refused).toHaveLength(CHATS * (QUEUED_PER_CHAT + 1));
    for (const chat of chats) expect(chat.agentTexts).toHaveLength(answersEach + (chat === chats[0] ? 1 : 0));
  });
});
