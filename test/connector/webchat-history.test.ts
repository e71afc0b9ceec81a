import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../support/postgres.js';
import {
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
  until,
} from '../support/processes.js';
import { type RedisServer, redisUnavailable, startRedis } from '../support/redis.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * Web-chat history lives in the connector's store: real `hermes connector serve` processes, a
 * visitor's socket, and an outbound-only gateway on the relay socket. History (visitor messages,
 * agent replies, edits, answered prompts) survives a restart and is the same on every instance; a
 * message re-sent with the same clientId is acknowledged with the first message's id and reaches
 * the agent once, also across a restart and across instances; another visitor's same clientId is
 * their own message.
 */

type Connector = RunningProcess & { url: string };
type Frame = { type: string; [key: string]: unknown };
type Message = { id: string; role: string; text: string; status?: string; prompt?: { chosen?: string } };

/** A browser stand-in that speaks the page's frames, clientId included. */
class Visitor {
  readonly frames: Frame[] = [];
  private ws: WebSocket | undefined;

  constructor(
    readonly url: string,
    readonly room: string,
    readonly visitor: string,
  ) {}

  get chatId(): string {
    return `wc-${this.room}-${this.visitor}`;
  }

  /** Connect; resolves with the history frame's messages. */
  async open(): Promise<Message[]> {
    const ws = new WebSocket(
      `${this.url.replace(/^http/, 'ws')}/chat/ws?room=${this.room}&visitor=${this.visitor}`,
    );
    this.ws = ws;
    ws.on('message', (data: Buffer) => this.frames.push(JSON.parse(data.toString('utf8')) as Frame));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const history = await this.next((f) => f.type === 'history', 'history');
    return history.messages as Message[];
  }

  say(text: string, clientId: string): void {
    this.ws?.send(JSON.stringify({ type: 'message', text, clientId }));
  }

  press(messageId: string, optionId: string): void {
    this.ws?.send(JSON.stringify({ type: 'press', message_id: messageId, option_id: optionId }));
  }

  of(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  next(match: (frame: Frame) => boolean, what: string, count = 1): Promise<Frame> {
    return until(() => this.frames.filter(match)[count - 1], 15_000, what);
  }

  /** The echo of `clientId` (`count`-th) and the ack of its message id: the id. */
  async acked(clientId: string, count = 1): Promise<string> {
    const echo = await this.next(
      (f) => f.type === 'message' && f.clientId === clientId,
      `echo of ${clientId}`,
      count,
    );
    const id = (echo.message as Message).id;
    await this.next((f) => f.type === 'ack' && f.message_id === id, `ack of ${clientId}`, count);
    return id;
  }

  close(): void {
    this.ws?.terminate();
  }
}

const inboundIds = (gateway: TestRelayClient): string[] =>
  gateway.frames
    .filter((f) => f.type === 'inbound')
    .map((f) => (f as unknown as { event: { message_id: string } }).event.message_id);

async function enroll(
  connector: Connector,
  db: string,
  tenant: string,
  gatewayId: string,
  routeKeys: string[],
): Promise<{ gatewayId: string; secret: string }> {
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    tenant,
    '--db',
    db,
  ]);
  const { token } = await hermesJson<{ token: string }>([
    'connector',
    'enroll-token',
    'create',
    '--tenant',
    tenant,
    '--db',
    db,
  ]);
  const response = await fetch(`${connector.url}/relay/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enrollmentToken: token, gatewayId, routeKeys }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { gatewayId: string; secret: string };
}

async function gatewayOn(connector: Connector, creds: { gatewayId: string; secret: string }) {
  const gateway = new TestRelayClient(
    `${connector.url.replace('http', 'ws')}/relay`,
    creds.gatewayId,
    creds.secret,
  );
  await gateway.connect();
  await gateway.hello('webchat');
  return gateway;
}

describe('web chat history and clientId on one connector (SQLite, real processes)', () => {
  const dir = tempDir('webchat-history');
  const db = join(dir.path, 'connector.db');
  let connector: Connector;
  let creds: { gatewayId: string; secret: string };
  let gateway: TestRelayClient;
  const open: { close(): void }[] = [];
  const visitorOn = async (room: string, id: string): Promise<[Visitor, Message[]]> => {
    const visitor = new Visitor(connector.url, room, id);
    open.push(visitor);
    return [visitor, await visitor.open()];
  };

  beforeAll(async () => {
    connector = await startConnectorProcess(db);
    creds = await enroll(connector, db, 'acme', 'gw-history', ['lobby']);
    gateway = await gatewayOn(connector, creds);
    open.push(gateway);
  }, 60_000);

  afterAll(async () => {
    for (const client of open) client.close();
    await connector?.stop('SIGKILL');
    dir.remove();
  });

  it('a clientId sent again is acknowledged with the same id and reaches the agent once; another visitor’s is theirs', async () => {
    const [tab, history] = await visitorOn('lobby', 'visitorDupA1');
    expect(history).toEqual([]);
    // Twice in a row, the second before the first's ack (a browser retrying on a flaky socket).
    tab.say('only once, please', 'k-1');
    tab.say('only once, please', 'k-1');
    const first = await tab.acked('k-1');
    expect(await tab.acked('k-1', 2)).toBe(first);
    // The same visitor in a second tab, the same clientId: still the first message.
    const [otherTab] = await visitorOn('lobby', 'visitorDupA1');
    otherTab.say('only once, please', 'k-1');
    expect(await otherTab.acked('k-1')).toBe(first);
    // Another visitor, the same clientId: their own message, their own delivery.
    const [stranger] = await visitorOn('lobby', 'visitorDupB2');
    stranger.say('mine', 'k-1');
    const theirs = await stranger.acked('k-1');
    expect(theirs).not.toBe(first);

    await until(() => inboundIds(gateway).includes(theirs) && inboundIds(gateway).includes(first), 15_000);
    // Every ack was sent after its message was queued or found queued: nothing more is on its way.
    const queued = await hermesJson<unknown[]>(['connector', 'deliveries', '--db', db, '--json']);
    expect(queued).toEqual([]);
    expect(inboundIds(gateway).filter((id) => id === first)).toHaveLength(1);
    expect(inboundIds(gateway).filter((id) => id === theirs)).toHaveLength(1);
    // The visitor's history holds the message once.
    const [again, stored] = await visitorOn('lobby', 'visitorDupA1');
    expect(stored.map((m) => [m.id, m.text, m.status])).toEqual([[first, 'only once, please', 'delivered']]);
    again.close();
  });

  it('history (messages, edits, answered prompts) survives a restart; a clientId re-sent after it is not queued again', async () => {
    const [visitor] = await visitorOn('lobby', 'visitorRestart1');
    visitor.say('before the restart', 'r-1');
    const asked = await visitor.acked('r-1');
    await until(() => inboundIds(gateway).includes(asked), 15_000, 'the message at the gateway');

    const reply = await gateway.op({ op: 'send', chat_id: visitor.chatId, content: 'answer', metadata: {} });
    expect(reply.success).toBe(true);
    const edited = await gateway.op({
      op: 'edit',
      chat_id: visitor.chatId,
      message_id: reply.message_id as string,
      content: 'answer, edited',
    });
    expect(edited.success).toBe(true);
    const question = await gateway.op({
      op: 'prompt',
      chat_id: visitor.chatId,
      content: 'Go on?',
      prompt_id: 'p1',
      options: [
        { id: 'yes', label: 'Yes' },
        { id: 'no', label: 'No' },
      ],
    });
    expect(question.success).toBe(true);
    await visitor.next(
      (f) => f.type === 'message' && (f.message as Message).id === question.message_id,
      'prompt',
    );
    visitor.press(question.message_id as string, 'yes');
    const answer = await visitor.next(
      (f) => f.type === 'message' && (f.message as Message).text === '/yes',
      'the answer',
    );
    const answerId = (answer.message as Message).id;
    await until(() => inboundIds(gateway).includes(answerId), 15_000, 'the answer at the gateway');

    // A clean stop, and the gateway gone: anything queued after this would stay in the outbox.
    for (const client of open.splice(0)) client.close();
    expect(await connector.stop('SIGTERM')).toBe(0);
    connector = await startConnectorProcess(db);

    const [back, history] = await visitorOn('lobby', 'visitorRestart1');
    expect(history.map((m) => [m.role, m.text, m.status, m.prompt?.chosen])).toEqual([
      ['user', 'before the restart', 'delivered', undefined],
      ['agent', 'answer, edited', undefined, undefined],
      ['agent', 'Go on?', undefined, 'Yes'],
      ['user', '/yes', 'delivered', undefined],
    ]);
    expect(history[0]?.id).toBe(asked);
    // The page re-sends what it never saw acknowledged: the same id, nothing queued.
    back.say('before the restart', 'r-1');
    expect(await back.acked('r-1')).toBe(asked);
    expect(await hermesJson<unknown[]>(['connector', 'deliveries', '--db', db, '--json'])).toEqual([]);
    // The answered prompt stays answered.
    back.press(question.message_id as string, 'no');
    const refused = await back.next((f) => f.type === 'error', 'refusal');
    expect(refused.message).toBe('That question was already answered.');
    // New messages still go.
    back.say('after the restart', 'r-2');
    const after = await back.acked('r-2');
    expect(after).not.toBe(asked);
  });
});

describe.skipIf(postgresUnavailable !== null || redisUnavailable !== null)(
  'web chat history on two instances (Postgres + Redis, real processes)',
  () => {
    let postgres: PostgresServer;
    let redis: RedisServer;
    let db: string;
    let a: Connector;
    let b: Connector;
    const open: { close(): void }[] = [];

    beforeAll(async () => {
      [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
      db = await postgres.createDatabase();
      a = await startConnectorProcess(db, { RELAY_REDIS_URL: redis.url, RELAY_INSTANCE_ID: 'A' });
      b = await startConnectorProcess(db, { RELAY_REDIS_URL: redis.url, RELAY_INSTANCE_ID: 'B' });
    }, 120_000);

    afterAll(async () => {
      for (const client of open) client.close();
      await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')]);
      await redis?.stop();
      await postgres?.stop();
    });

    it('a visitor sees the same history on either instance, and a clientId re-sent through the other is one delivery', async () => {
      const creds = await enroll(a, db, 'acme', 'gw-two', ['hall']);
      const gateway = await gatewayOn(a, creds);
      open.push(gateway);
      const onA = new Visitor(a.url, 'hall', 'visitorTwo01');
      open.push(onA);
      expect(await onA.open()).toEqual([]);
      onA.say('hello from A', 'two-1');
      const first = await onA.acked('two-1');
      await until(() => inboundIds(gateway).includes(first), 15_000, 'the message at the gateway');
      const reply = await gateway.op({ op: 'send', chat_id: onA.chatId, content: 'reply', metadata: {} });
      await gateway.op({
        op: 'edit',
        chat_id: onA.chatId,
        message_id: reply.message_id as string,
        content: 'reply, edited',
      });
      await gateway.op({
        op: 'react',
        chat_id: onA.chatId,
        message_id: first,
        emoji: '👍',
      });
      await onA.next((f) => f.type === 'update', 'the reaction on A');

      // The same visitor on B (a load balancer picked the other instance after a reconnect).
      onA.close();
      const onB = new Visitor(b.url, 'hall', 'visitorTwo01');
      open.push(onB);
      const history = await onB.open();
      expect(history.map((m) => [m.id, m.role, m.text, m.status])).toEqual([
        [first, 'user', 'hello from A', 'delivered'],
        [reply.message_id, 'agent', 'reply, edited', undefined],
      ]);
      expect((history[0] as { reactions?: string[] }).reactions).toEqual(['👍']);
      onB.say('hello from A', 'two-1');
      expect(await onB.acked('two-1')).toBe(first);
      onB.say('next, via B', 'two-2');
      const next = await onB.acked('two-2');
      await until(() => inboundIds(gateway).includes(next), 15_000, 'the next message at the gateway');
      expect(inboundIds(gateway).filter((id) => id === first)).toHaveLength(1);
    });
  },
);
