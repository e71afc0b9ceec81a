import { createPublicKey, verify } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DiscordAPIError, type RateLimitData, REST, RESTEvents } from '@discordjs/rest';
import {
  type SessionInfo,
  WebSocketManager,
  WebSocketShardEvents,
  WebSocketShardStatus,
} from '@discordjs/ws';
import {
  type APIChannel,
  type APIMessage,
  GatewayDispatchEvents,
  type GatewayDispatchPayload,
  GatewayIntentBits,
  type GatewayReadyDispatchData,
  Routes,
} from 'discord-api-types/v10';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type FakeDiscord, type FakeDiscordOptions, startFakeDiscord } from '../support/fake-discord.js';
import { until } from '../support/poll.js';

// The fake driven by the real @discordjs/rest and @discordjs/ws: if these pass, the fake speaks
// enough of Discord's protocols for code written against those libraries.

const GUILD = '1000000000000000001';
const CHANNEL = '1100000000000000001';
const DM_CHANNEL = '1100000000000000002';
const INTENTS =
  GatewayIntentBits.GuildMessages | GatewayIntentBits.DirectMessages | GatewayIntentBits.MessageContent;

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function fakeDiscord(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  const fake = await startFakeDiscord(options);
  cleanups.push(() => fake.close());
  fake.addChannel({ id: CHANNEL, type: 0, name: 'general', guild_id: GUILD });
  return fake;
}

function restFor(fake: FakeDiscord, token = fake.token): REST {
  const rest = new REST({ api: fake.apiRoot, version: '10' }).setToken(token);
  cleanups.push(() => {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
  });
  return rest;
}

/** A WebSocketManager on the fake with its own session store (the library's default is process-wide). */
function gatewayClient(fake: FakeDiscord, rest: REST, saved?: SessionInfo) {
  const sessions = new Map<number, SessionInfo>(saved ? [[saved.shardId, saved]] : []);
  const dispatches: GatewayDispatchPayload[] = [];
  const readies: GatewayReadyDispatchData[] = [];
  const resumes: number[] = [];
  const acks: number[] = [];
  const manager = new WebSocketManager({
    token: fake.token,
    intents: INTENTS,
    rest,
    retrieveSessionInfo: (shardId) => sessions.get(shardId) ?? null,
    updateSessionInfo: (shardId, info) => {
      if (info) sessions.set(shardId, info);
      else sessions.delete(shardId);
    },
    // The default throttler holds a second IDENTIFY within 5 s of the first (max_concurrency 1).
    buildIdentifyThrottler: () => ({ waitForIdentify: () => Promise.resolve() }),
  });
  manager.on(WebSocketShardEvents.Dispatch, (payload) => dispatches.push(payload));
  manager.on(WebSocketShardEvents.Ready, (data) => readies.push(data));
  manager.on(WebSocketShardEvents.Resumed, (shardId) => resumes.push(shardId));
  manager.on(WebSocketShardEvents.HeartbeatComplete, (stats) => acks.push(stats.latency));
  let destroyed = false;
  const destroy = async (options?: { code?: number }) => {
    if (destroyed) return;
    destroyed = true;
    // Destroying a shard while it waits to reconnect would leave it reconnecting forever.
    await until(
      async () => [...(await manager.fetchStatus()).values()].every((s) => s === WebSocketShardStatus.Ready),
      5000,
      'the shard to be ready before destroying it',
    ).catch(() => undefined);
    await manager.destroy(options);
  };
  cleanups.push(() => destroy());
  const messagesWithId = (id: string) =>
    dispatches.filter((p) => p.t === GatewayDispatchEvents.MessageCreate && p.d.id === id);
  return { manager, sessions, dispatches, readies, resumes, acks, destroy, messagesWithId };
}

type RawPayload = { op: number; d: unknown; s: number | null; t: string | null };

/** A bare gateway socket, for protocol details the library hides. */
async function rawGateway(fake: FakeDiscord) {
  const ws = new WebSocket(`${fake.gatewayUrl}?v=10&encoding=json`);
  const received: RawPayload[] = [];
  let closed: { code: number; reason: string } | undefined;
  ws.on('message', (data) => received.push(JSON.parse(String(data)) as RawPayload));
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
  });
  cleanups.push(() => ws.terminate());
  await once(ws, 'open');
  return {
    received,
    send: (payload: unknown) => ws.send(JSON.stringify(payload)),
    closed: () => until(() => closed, 5000, 'the gateway to close the socket'),
    next: (op: number, t?: string) =>
      until(
        () => received.find((p) => p.op === op && (t === undefined || p.t === t)),
        5000,
        `op ${op} ${t ?? ''}`,
      ),
  };
}

async function rejection(promise: Promise<unknown>): Promise<DiscordAPIError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DiscordAPIError) return error;
    throw error;
  }
  throw new Error('expected a DiscordAPIError');
}

// --- REST ------------------------------------------------------------------------------------------

describe('fake Discord REST, through @discordjs/rest', () => {
  it('creates, edits, reacts, types and threads like Discord', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);

    const sent = (await rest.post(Routes.channelMessages(CHANNEL), {
      body: { content: 'hello' },
    })) as APIMessage;
    expect(sent).toMatchObject({
      channel_id: CHANNEL,
      content: 'hello',
      type: 0,
      author: { id: fake.botUserId, bot: true },
      attachments: [],
    });
    expect(fake.messages.get(sent.id)).toMatchObject({ content: 'hello', edited: false });
    expect(fake.requests[0]).toMatchObject({
      method: 'POST',
      path: `/channels/${CHANNEL}/messages`,
      body: { content: 'hello' },
      status: 200,
      headers: { authorization: `Bot ${fake.token}` },
    });
    // The library learnt the bucket from X-RateLimit-Bucket.
    expect(rest.hashes.get('POST:/channels/:id/messages')?.value).toMatch(/^[0-9a-f]{32}$/);

    const edited = (await rest.patch(Routes.channelMessage(CHANNEL, sent.id), {
      body: { content: 'hello again' },
    })) as APIMessage;
    expect(edited.content).toBe('hello again');
    expect(edited.edited_timestamp).not.toBeNull();
    expect(fake.messages.get(sent.id)).toMatchObject({ content: 'hello again', edited: true, edits: 1 });

    const reply = (await rest.post(Routes.channelMessages(CHANNEL), {
      body: { content: 'a reply', message_reference: { message_id: sent.id } },
    })) as APIMessage;
    expect(reply).toMatchObject({ type: 19, message_reference: { message_id: sent.id } });

    const reaction = Routes.channelMessageOwnReaction(CHANNEL, sent.id, encodeURIComponent('👍'));
    await rest.put(reaction);
    expect(fake.messages.get(sent.id)?.reactions).toEqual(['👍']);
    await rest.delete(reaction);
    expect(fake.messages.get(sent.id)?.reactions).toEqual([]);
    const badEmoji = await rejection(
      rest.put(Routes.channelMessageOwnReaction(CHANNEL, sent.id, encodeURIComponent('nope'))),
    );
    expect(badEmoji).toMatchObject({ status: 400, code: 10014 });

    await rest.post(Routes.channelTyping(CHANNEL));
    expect(fake.typing).toEqual([CHANNEL]);

    // A thread from a message takes the message's id; a thread without one gets its own.
    const anchored = (await rest.post(Routes.threads(CHANNEL, sent.id), {
      body: { name: 'about hello' },
    })) as APIChannel;
    expect(anchored).toMatchObject({ id: sent.id, type: 11, name: 'about hello', parent_id: CHANNEL });
    const again = await rejection(rest.post(Routes.threads(CHANNEL, sent.id), { body: { name: 'twice' } }));
    expect(again.code).toBe(160004);
    const loose = (await rest.post(Routes.threads(CHANNEL), {
      body: { name: 'side', type: 11 },
    })) as APIChannel;
    expect(loose).toMatchObject({ type: 11, name: 'side', parent_id: CHANNEL });
    expect(loose.id).not.toBe(sent.id);
    const renamed = (await rest.patch(Routes.channel(loose.id), { body: { name: 'renamed' } })) as APIChannel;
    expect(renamed).toMatchObject({ id: loose.id, name: 'renamed' });
    expect(fake.threads).toEqual([
      { id: sent.id, parent_id: CHANNEL, name: 'about hello', type: 11, message_id: sent.id },
      { id: loose.id, parent_id: CHANNEL, name: 'renamed', type: 11 },
    ]);
    const inThread = (await rest.post(Routes.channelMessages(loose.id), {
      body: { content: 'in thread' },
    })) as APIMessage;
    expect(inThread.channel_id).toBe(loose.id);
    expect(await rest.get(Routes.channel(CHANNEL))).toMatchObject({ id: CHANNEL, type: 0, guild_id: GUILD });
  });

  it('takes multipart uploads the way the library builds them', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const sent = (await rest.post(Routes.channelMessages(CHANNEL), {
      body: { content: 'two files', attachments: [{ id: 0, description: 'some notes' }] },
      files: [
        { name: 'notes.txt', data: Buffer.from('hello file'), contentType: 'text/plain' },
        // No content type: the library sniffs it from the bytes.
        { name: 'picture.png', data: png },
      ],
    })) as APIMessage;
    expect(sent.content).toBe('two files');
    expect(sent.attachments).toMatchObject([
      { filename: 'notes.txt', size: 10, content_type: 'text/plain', description: 'some notes' },
      { filename: 'picture.png', size: png.length, content_type: 'image/png' },
    ]);
    const stored = fake.messages.get(sent.id);
    expect(stored?.attachments.map((a) => [a.filename, a.bytes.toString('hex')])).toEqual([
      ['notes.txt', Buffer.from('hello file').toString('hex')],
      ['picture.png', png.toString('hex')],
    ]);
    expect(fake.requests[0]?.files).toMatchObject([
      { field: 'files[0]', filename: 'notes.txt' },
      { field: 'files[1]', filename: 'picture.png' },
    ]);
    // The attachment URL serves the bytes.
    const download = await fetch(sent.attachments[0]?.url ?? '');
    expect(Buffer.from(await download.arrayBuffer()).toString()).toBe('hello file');
  });

  it('refuses like Discord: DiscordAPIError with the JSON error code', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);

    const missing = await rejection(
      rest.patch(Routes.channelMessage(CHANNEL, '1200000000000000001'), { body: { content: 'x' } }),
    );
    expect(missing).toBeInstanceOf(DiscordAPIError);
    expect(missing).toMatchObject({ status: 404, code: 10008, message: 'Unknown Message', method: 'PATCH' });

    const unknownChannel = await rejection(rest.get(Routes.channel('1300000000000000001')));
    expect(unknownChannel).toMatchObject({ status: 404, code: 10003 });

    const tooLong = await rejection(
      rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'x'.repeat(2001) } }),
    );
    expect(tooLong).toMatchObject({ status: 400, code: 50035 });
    expect(tooLong.message).toBe(
      'Invalid Form Body\ncontent[BASE_TYPE_MAX_LENGTH]: Must be 2000 or fewer in length.',
    );

    const empty = await rejection(rest.post(Routes.channelMessages(CHANNEL), { body: { content: '' } }));
    expect(empty).toMatchObject({ status: 400, code: 50006 });

    const badReply = await rejection(
      rest.post(Routes.channelMessages(CHANNEL), {
        body: { content: 'x', message_reference: { message_id: '1200000000000000002' } },
      }),
    );
    expect(badReply).toMatchObject({ status: 400, code: 50035 });
    const looseReply = (await rest.post(Routes.channelMessages(CHANNEL), {
      body: {
        content: 'x',
        message_reference: { message_id: '1200000000000000002', fail_if_not_exists: false },
      },
    })) as APIMessage;
    expect(looseReply.type).toBe(0);

    fake.failNext(/^POST \/channels\/\d+\/messages$/, 403, { message: 'Missing Permissions', code: 50013 });
    const forbidden = await rejection(rest.post(Routes.channelMessages(CHANNEL), { body: { content: 'x' } }));
    expect(forbidden).toMatchObject({ status: 403, code: 50013, message: 'Missing Permissions' });

    const wrongToken = await rejection(restFor(fake, 'not-the-token').get(Routes.user('@me')));
    expect(wrongToken).toMatchObject({ status: 401, code: 0, message: '401: Unauthorized' });

    const nowhere = await rejection(rest.get('/no/such/route'));
    expect(nowhere).toMatchObject({ status: 404, code: 0 });
  });

  it('has @discordjs/rest wait out a 429 and retry', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);
    const limited: RateLimitData[] = [];
    rest.on(RESTEvents.RateLimited, (info) => limited.push(info));

    fake.rateLimit(/^POST \/channels\/\d+\/messages$/, { retryAfterSeconds: 0.2 });
    const sent = (await rest.post(Routes.channelMessages(CHANNEL), {
      body: { content: 'patient' },
    })) as APIMessage;
    expect(sent.content).toBe('patient');
    const posts = fake.requests.filter(
      (r) => r.method === 'POST' && r.path === `/channels/${CHANNEL}/messages`,
    );
    expect(posts.map((r) => r.status)).toEqual([429, 200]);
    expect(limited).toMatchObject([{ global: false, route: '/channels/:id/messages', method: 'POST' }]);
    expect([...fake.messages.values()].filter((m) => m.content === 'patient')).toHaveLength(1);

    // A global limit holds every route.
    fake.rateLimit(/^GET \/users\/@me$/, { retryAfterSeconds: 0.2, global: true });
    expect(await rest.get(Routes.user('@me'))).toMatchObject({ id: fake.botUserId });
    expect(fake.requests.filter((r) => r.path === '/users/@me').map((r) => r.status)).toEqual([429, 200]);
    expect(limited[1]).toMatchObject({ global: true });
  });

  it('keeps slash commands as bulk overwrites', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);
    const body = [{ name: 'ask', description: 'Ask the agent', options: [] }];
    const put = (await rest.put(Routes.applicationGuildCommands(fake.applicationId, GUILD), { body })) as {
      id: string;
    }[];
    expect(put).toMatchObject([
      { name: 'ask', type: 1, application_id: fake.applicationId, guild_id: GUILD },
    ]);
    await rest.put(Routes.applicationGuildCommands(fake.applicationId, GUILD), { body });
    expect(fake.commands).toMatchObject([
      { scope: GUILD, puts: 2, commands: [{ id: put[0]?.id, name: 'ask' }] },
    ]);
    expect(await rest.get(Routes.applicationCommands(fake.applicationId))).toEqual([]);
    const invalid = await rejection(
      rest.put(Routes.applicationCommands(fake.applicationId), {
        body: [{ name: 'Bad Name', description: 'x' }],
      }),
    );
    expect(invalid).toMatchObject({ status: 400, code: 50035 });
  });
});

// --- Gateway ---------------------------------------------------------------------------------------

describe('fake Discord gateway, through @discordjs/ws', () => {
  it('gets READY, heartbeats, and MESSAGE_CREATE', async () => {
    const fake = await fakeDiscord({ heartbeatIntervalMs: 100 });
    const client = gatewayClient(fake, restFor(fake));
    await client.manager.connect();
    await fake.waitForReady();

    expect(client.readies[0]).toMatchObject({
      v: 10,
      user: { id: fake.botUserId, bot: true },
      guilds: [],
      resume_gateway_url: fake.gatewayUrl,
      shard: [0, 1],
      application: { id: fake.applicationId },
    });
    expect(fake.gateway).toMatchObject({ identifies: 1, resumes: 0, openSockets: 1 });
    expect(fake.gateway.lastIdentify).toMatchObject({ token: fake.token, intents: INTENTS, shard: [0, 1] });
    expect(fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain('GET /gateway/bot 200');

    const message = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'hi bot' });
    const [got] = await until(
      () => client.messagesWithId(message.id).at(0) && client.messagesWithId(message.id),
    );
    expect(got?.t === GatewayDispatchEvents.MessageCreate && got.d).toMatchObject({
      content: 'hi bot',
      channel_id: CHANNEL,
      guild_id: GUILD,
      author: { id: '700000000000000001', username: 'alice', bot: false },
    });
    // The message is there for REST too.
    expect(await restFor(fake).get(Routes.channelMessage(CHANNEL, message.id))).toMatchObject({
      content: 'hi bot',
    });

    await until(() => fake.gateway.heartbeats >= 2 && client.acks.length >= 2, 5000, 'heartbeats and ACKs');
  });

  it('RESUMEs after a dropped connection and replays what was sent meanwhile, once', async () => {
    const fake = await fakeDiscord({ heartbeatIntervalMs: 500 });
    const client = gatewayClient(fake, restFor(fake));
    await client.manager.connect();
    const before = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'before' });
    await until(() => client.messagesWithId(before.id).length === 1);

    fake.dropConnections();
    const missed = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'while down' });
    await fake.waitForReady(2);
    await until(() => client.resumes.length === 1, 10_000, 'the library to resume');
    await until(() => client.messagesWithId(missed.id).length === 1);
    const after = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'after' });
    await until(() => client.messagesWithId(after.id).length === 1);

    expect(client.messagesWithId(before.id)).toHaveLength(1);
    expect(client.messagesWithId(missed.id)).toHaveLength(1);
    expect(fake.gateway).toMatchObject({ identifies: 1, resumes: 1, openSockets: 1 });
    const sequences = client.dispatches.map((p) => p.s);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
  });

  it('lets the next client RESUME a session left with 4200, not one closed with 1000', async () => {
    const fake = await fakeDiscord();
    const first = gatewayClient(fake, restFor(fake));
    await first.manager.connect();
    const saved = first.sessions.get(0);
    expect(saved).toBeDefined();
    await first.destroy({ code: 4200 });
    expect(fake.gateway.closeCodes).toEqual([4200]);

    const missed = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'nobody home' });
    const second = gatewayClient(fake, restFor(fake), saved);
    await second.manager.connect();
    expect(second.resumes).toEqual([0]);
    await until(() => second.messagesWithId(missed.id).length === 1);
    expect(fake.gateway).toMatchObject({ identifies: 1, resumes: 1 });

    // Closing with 1000 ends the session: the next RESUME is refused and the library identifies.
    const resumed = second.sessions.get(0);
    await second.destroy();
    expect(fake.gateway.closeCodes).toEqual([4200, 1000]);
    const third = gatewayClient(fake, restFor(fake), resumed);
    await third.manager.connect();
    expect(third.readies).toHaveLength(1);
    expect(fake.gateway).toMatchObject({ identifies: 2, resumes: 1, failedResumes: 1 });
  });

  it('follows op 9 and op 7: IDENTIFY again when not resumable, RESUME otherwise', async () => {
    const fake = await fakeDiscord();
    const client = gatewayClient(fake, restFor(fake));
    await client.manager.connect();
    const firstSession = client.sessions.get(0)?.sessionId;

    fake.invalidateSession(false);
    await until(() => client.readies.length === 2, 10_000, 'a second READY');
    expect(fake.gateway).toMatchObject({ identifies: 2, resumes: 0 });
    expect(client.sessions.get(0)?.sessionId).not.toBe(firstSession);

    fake.invalidateSession(true);
    await until(() => client.resumes.length === 1, 10_000, 'a resume on the same socket');
    fake.sendReconnect();
    await until(() => client.resumes.length === 2, 10_000, 'a resume after op 7');
    expect(fake.gateway).toMatchObject({ identifies: 2, resumes: 2, openSockets: 1 });

    const message = fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'still here' });
    await until(() => client.messagesWithId(message.id).length === 1);
  });

  it('speaks the protocol details: auth failure, unknown session, intents, content', async () => {
    const fake = await fakeDiscord({ heartbeatIntervalMs: 45_000 });
    expect(() => fake.dispatchMessage({ channel_id: CHANNEL, content: 'x' })).toThrow(/no gateway session/);

    const bad = await rawGateway(fake);
    expect(await bad.next(10)).toMatchObject({ d: { heartbeat_interval: 45_000 } });
    bad.send({ op: 1, d: null });
    await bad.next(11);
    bad.send({ op: 2, d: { token: 'wrong', intents: 0, properties: {} } });
    expect(await bad.closed()).toEqual({ code: 4004, reason: 'Authentication failed.' });

    const stale = await rawGateway(fake);
    await stale.next(10);
    stale.send({ op: 6, d: { token: fake.token, session_id: 'gone', seq: 3 } });
    expect(await stale.next(9)).toMatchObject({ d: false });

    // GUILD_MESSAGES without MESSAGE_CONTENT: guild text is emptied unless the bot is mentioned; no DMs.
    const plain = await rawGateway(fake);
    await plain.next(10);
    plain.send({ op: 2, d: { token: fake.token, intents: GatewayIntentBits.GuildMessages, properties: {} } });
    expect(await plain.next(0, 'READY')).toMatchObject({ s: 1 });
    fake.dispatchMessage({ channel_id: DM_CHANNEL, content: 'a DM' });
    fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: 'unmentioned' });
    fake.dispatchMessage({ channel_id: CHANNEL, guild_id: GUILD, content: `<@${fake.botUserId}> mentioned` });
    await until(() => plain.received.filter((p) => p.t === 'MESSAGE_CREATE').length === 2);
    expect(plain.received.filter((p) => p.t === 'MESSAGE_CREATE')).toMatchObject([
      { s: 2, d: { content: '' } },
      { s: 3, d: { content: `<@${fake.botUserId}> mentioned`, mentions: [{ id: fake.botUserId }] } },
    ]);
  });
});

// --- Interactions ----------------------------------------------------------------------------------

describe('fake Discord interactions', () => {
  it('signs like Discord, and the tokens work for callbacks and follow-ups', async () => {
    const fake = await fakeDiscord();
    const rest = restFor(fake);
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(fake.publicKeyHex, 'hex').toString('base64url') },
      format: 'jwk',
    });
    expect(fake.publicKeyHex).toMatch(/^[0-9a-f]{64}$/);
    const direct = fake.sign('{"type":1}', '1700000000');
    expect(direct.timestamp).toBe('1700000000');
    expect(
      verify(null, Buffer.from(`1700000000{"type":1}`), publicKey, Buffer.from(direct.signature, 'hex')),
    ).toBe(true);

    // A tiny interactions endpoint: verify, answer PING with PONG, commands with a deferral,
    // components with 202 (the callback comes over REST).
    const endpoint = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const signature = String(req.headers['x-signature-ed25519'] ?? '');
        const timestamp = String(req.headers['x-signature-timestamp'] ?? '');
        const valid =
          req.headers['content-type'] === 'application/json' &&
          verify(
            null,
            Buffer.concat([Buffer.from(timestamp), body]),
            publicKey,
            Buffer.from(signature, 'hex'),
          );
        if (!valid) {
          res.writeHead(401).end('invalid request signature');
          return;
        }
        const interaction = JSON.parse(body.toString()) as { type: number };
        if (interaction.type === 3) {
          res.writeHead(202).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: interaction.type === 1 ? 1 : 5 }));
      });
    });
    endpoint.listen(0, '127.0.0.1');
    await once(endpoint, 'listening');
    cleanups.push(() => new Promise((resolve) => endpoint.close(resolve)));
    const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/discord/interactions`;

    const ping = await fake.postInteraction(url, { type: 1 });
    expect(ping).toMatchObject({ status: 200, body: { type: 1 }, timedOut: false });
    expect(ping.interaction).toMatchObject({ application_id: fake.applicationId, version: 1 });
    expect(ping.elapsedMs).toBeGreaterThanOrEqual(0);
    const forged = await fake.postInteraction(url, { type: 1 }, { forge: true });
    expect(forged).toMatchObject({ status: 401, body: null, text: 'invalid request signature' });

    // A command answered with a deferral over HTTP: the token then edits @original and follows up.
    const command = await fake.postInteraction(url, {
      type: 2,
      channel_id: CHANNEL,
      guild_id: GUILD,
      data: { id: '1400000000000000001', name: 'ask', type: 1 },
    });
    expect(command.body).toEqual({ type: 5 });
    expect(fake.interactionCallbacks).toEqual([
      {
        interactionId: command.interaction.id,
        token: command.interaction.token,
        body: { type: 5 },
        via: 'http',
      },
    ]);
    const token = command.interaction.token;
    const original = (await rest.patch(Routes.webhookMessage(fake.applicationId, token, '@original'), {
      body: { content: 'the answer' },
      auth: false,
    })) as APIMessage;
    expect(original).toMatchObject({
      content: 'the answer',
      channel_id: CHANNEL,
      webhook_id: fake.applicationId,
    });
    const followUp = (await rest.post(Routes.webhook(fake.applicationId, token), {
      body: { content: 'and more' },
      auth: false,
    })) as APIMessage;
    expect(fake.followUps).toEqual([
      { token, body: { content: 'the answer' }, messageId: original.id, edited: true },
      { token, body: { content: 'and more' }, messageId: followUp.id },
    ]);
    // `auth: false` sends no Authorization header; the webhook routes need none.
    const webhookCalls = fake.requests.filter((r) => r.path.startsWith('/webhooks/'));
    expect(webhookCalls.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
    const late = await rejection(
      rest.post(Routes.interactionCallback(command.interaction.id, token), {
        body: { type: 4 },
        auth: false,
      }),
    );
    expect(late).toMatchObject({ status: 400, code: 40060 });

    // A component acknowledged over REST, once.
    const click = await fake.postInteraction(url, { type: 3, channel_id: CHANNEL, data: { custom_id: 'x' } });
    expect(click.status).toBe(202);
    const callback = Routes.interactionCallback(click.interaction.id, click.interaction.token);
    await rest.post(callback, { body: { type: 6 }, auth: false });
    expect(fake.interactionCallbacks.at(-1)).toMatchObject({
      interactionId: click.interaction.id,
      via: 'rest',
    });
    expect(await rejection(rest.post(callback, { body: { type: 6 }, auth: false }))).toMatchObject({
      code: 40060,
    });
    const unknown = await rejection(
      rest.post(Routes.interactionCallback(click.interaction.id, 'not-a-token'), {
        body: { type: 6 },
        auth: false,
      }),
    );
    expect(unknown).toMatchObject({ status: 404, code: 10062 });
    const noWebhook = await rejection(
      rest.post(Routes.webhook(fake.applicationId, 'not-a-token'), { body: { content: 'x' }, auth: false }),
    );
    expect(noWebhook).toMatchObject({ status: 404, code: 10015 });
  });
});
