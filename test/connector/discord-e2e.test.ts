import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintUpgradeToken } from '../../src/auth/index.js';
import {
  buildSessionKey,
  type ConnectorFrame,
  DISCORD_INTERACTION_KIND,
  discordInteractionSource,
  normalizePlatform,
  parseDiscordInteraction,
} from '../../src/protocol/index.js';
import { type FakeDiscord, startFakeDiscord } from '../support/fake-discord.js';
import { until } from '../support/poll.js';
import {
  hermes,
  hermesJson,
  type RunningProcess,
  startConnectorProcess,
  tempDir,
} from '../support/processes.js';
import { TestRelayClient } from '../support/test-gateway.js';

/**
 * Discord through a real connector process, against the local fake Discord (Gateway socket, REST,
 * signed interactions), with a current-generation gateway on the socket speaking the wire as the
 * reference gateway does: a guild message reaches it and its reply appears, `requireAddress`
 * holds back what does not mention the bot, a slash command is acknowledged at once, forwarded
 * without its token and answered through `follow_up`, and a forged interaction is refused.
 */

const dir = tempDir('connector-discord');
const db = `${dir.path}/connector.db`;
const GUILD = '1100000000000000001';
const CHANNEL = '1200000000000000001';
const FREE_CHANNEL = '1200000000000000002';
const UNROUTED_GUILD = '1100000000000000099';
const UNROUTED_CHANNEL = '1200000000000000099';
const ALICE = { id: '700000000000000001', username: 'alice', global_name: 'Alice' };
const MANIFEST = [
  { name: 'summarize', description: 'Summarize the channel' },
  {
    name: 'skill',
    description: 'Run a skill',
    options: [
      {
        type: 1,
        name: 'run',
        description: 'Run one',
        options: [{ type: 3, name: 'name', description: 'Skill' }],
      },
    ],
  },
];

let discord: FakeDiscord;
let connector: RunningProcess & { url: string };
let gateway: TestRelayClient;
let gatewayId = 'gw-dc';
let secret = '';

const interactionsUrl = () => `${connector.url}/discord/interactions`;
const inboundTexts = () =>
  gateway.frames.flatMap((frame) => (frame.type === 'inbound' ? [frame.event.text] : []));
const forwards = () => gateway.frames.filter((frame) => frame.type === 'passthrough_forward');

function mention(text: string) {
  return {
    channel_id: CHANNEL,
    guild_id: GUILD,
    content: `<@${discord.botUserId}> ${text}`,
    mentions: [{ id: discord.botUserId, username: 'hermes-bot' }],
    author: ALICE,
  };
}

async function nextInbound(text: string): Promise<Extract<ConnectorFrame, { type: 'inbound' }>> {
  return until(
    () =>
      gateway.frames.find((frame) => frame.type === 'inbound' && frame.event.text === text) as
        | Extract<ConnectorFrame, { type: 'inbound' }>
        | undefined,
    15_000,
    `inbound "${text}"`,
  );
}

beforeAll(async () => {
  discord = await startFakeDiscord({ heartbeatIntervalMs: 1_000 });
  discord.addChannel({ id: CHANNEL, type: 0, name: 'general', guild_id: GUILD });
  discord.addChannel({ id: FREE_CHANNEL, type: 0, name: 'free-talk', guild_id: GUILD });
  discord.addChannel({ id: UNROUTED_CHANNEL, type: 0, name: 'elsewhere', guild_id: UNROUTED_GUILD });
  const { accessToken } = await hermesJson<{ accessToken: string }>([
    'connector',
    'tenant',
    'create',
    'dc',
    '--db',
    db,
  ]);
  connector = await startConnectorProcess(db, {
    RELAY_LOG_LEVEL: 'info',
    DISCORD_BOT_TOKEN: discord.token,
    DISCORD_APPLICATION_ID: discord.applicationId,
    DISCORD_PUBLIC_KEY: discord.publicKeyHex,
    DISCORD_API_ROOT: discord.apiRoot,
  });
  await discord.waitForReady();
  const response = await fetch(`${connector.url}/relay/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ gatewayId, platform: 'discord', botId: discord.applicationId }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  ({ gatewayId, secret } = (await response.json()) as { gatewayId: string; secret: string });
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
    gatewayId,
    '--db',
    db,
  ]);
  expect(route.code, route.stderr).toBe(0);
  // What the reference gateway declares at boot for `require_mention: true`.
  const policy = await fetch(`${connector.url}/relay/policy`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${mintUpgradeToken(gatewayId, secret, 300)}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      platform: 'discord',
      requireAddress: true,
      freeResponseScopes: [FREE_CHANNEL],
      allowOtherBots: false,
    }),
  });
  expect(policy.status, await policy.clone().text()).toBe(200);
  gateway = new TestRelayClient(`${connector.url.replace('http', 'ws')}/relay`, gatewayId, secret);
  await gateway.connect();
  gateway.send({
    type: 'hello',
    platform: 'discord',
    botId: discord.applicationId,
    command_manifest: MANIFEST,
  });
  await until(() => gateway.descriptor, 10_000, 'a descriptor');
}, 90_000);

afterAll(async () => {
  gateway?.close();
  await connector?.stop();
  await discord?.close();
  dir.remove();
});

describe('Discord through the connector', () => {
  it('answers hello with the Discord descriptor, every op it implements advertised', () => {
    expect(gateway.descriptor).toMatchObject({
      platform: 'discord',
      label: 'Discord',
      max_message_length: 2000,
      len_unit: 'chars',
      markdown_dialect: 'discord',
      supports_edit: true,
      supports_threads: true,
    });
    expect(gateway.descriptor?.supported_ops).toEqual([
      'send',
      'edit',
      'typing',
      'follow_up',
      'get_chat_info',
      'send_media',
      'prompt',
      'react',
      'thread_create',
      'thread_rename',
    ]);
  });

  it('registers the manifest’s slash commands for the routed guild, again only when it changes', async () => {
    const puts = () =>
      discord.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(`/guilds/${GUILD}/commands`));
    await until(() => puts().length === 1 || undefined, 10_000, 'the guild commands registered');
    const registered = discord.commands.find((entry) => entry.scope === GUILD);
    expect(((registered?.commands ?? []) as { name: string }[]).map((command) => command.name)).toEqual([
      'summarize',
      'skill',
    ]);
    // The same manifest again (a reconnect): nothing written. A changed one: written once.
    gateway.send({
      type: 'hello',
      platform: 'discord',
      botId: discord.applicationId,
      command_manifest: MANIFEST,
    });
    gateway.send({
      type: 'hello',
      platform: 'discord',
      botId: discord.applicationId,
      command_manifest: [...MANIFEST, { name: 'new', description: 'Start a new conversation' }],
    });
    await until(() => puts().length === 2 || undefined, 10_000, 'the changed manifest registered');
    expect(puts()).toHaveLength(2);
    expect(discord.commands.find((entry) => entry.scope === GUILD)?.commands).toHaveLength(3);
  });

  it('delivers a guild message that mentions the bot, and the reply appears in the channel', async () => {
    const sent = discord.dispatchMessage(mention('what is on the agenda?'));
    const frame = await nextInbound('what is on the agenda?');
    expect(frame.event.message_id).toBe(sent.id);
    expect(frame.event.source).toMatchObject({
      platform: 'discord',
      chat_id: CHANNEL,
      chat_type: 'group',
      chat_name: 'general',
      scope_id: GUILD,
      user_id: ALICE.id,
      user_name: 'Alice',
      is_bot: false,
    });
    const result = await gateway.op({
      op: 'send',
      chat_id: CHANNEL,
      content: 'The agenda: **ship it**.',
      reply_to: sent.id,
      metadata: { scope_id: GUILD },
    });
    expect(result.success).toBe(true);
    const reply = discord.messages.get(String(result.message_id));
    expect(reply).toMatchObject({ channel_id: CHANNEL, content: 'The agenda: **ship it**.' });
    expect(reply?.message_reference?.message_id).toBe(sent.id);
  });

  it('under requireAddress delivers no unaddressed guild chatter, except in a free channel; never another bot', async () => {
    discord.dispatchMessage({
      channel_id: CHANNEL,
      guild_id: GUILD,
      content: 'just chatting',
      author: ALICE,
    });
    discord.dispatchMessage({
      channel_id: CHANNEL,
      guild_id: GUILD,
      content: `<@${discord.botUserId}> from a bot`,
      mentions: [{ id: discord.botUserId, username: 'hermes-bot' }],
      author: { id: '700000000000000009', username: 'otherbot', bot: true },
    });
    discord.dispatchMessage({
      channel_id: FREE_CHANNEL,
      guild_id: GUILD,
      content: 'free talk',
      author: ALICE,
    });
    discord.dispatchMessage(mention('marker after the chatter'));
    // Channels are handled side by side: the free channel's message is awaited on its own; the
    // marker follows the chatter in their channel, so they were handled before it.
    await nextInbound('free talk');
    await nextInbound('marker after the chatter');
    const texts = inboundTexts();
    expect(texts).not.toContain('just chatting');
    expect(texts).not.toContain('from a bot');
  });

  it('ignores a guild with no route and counts it in /metrics', async () => {
    discord.dispatchMessage({
      ...mention('anyone there?'),
      channel_id: UNROUTED_CHANNEL,
      guild_id: UNROUTED_GUILD,
    });
    await until(
      async () => {
        const metrics = await (await fetch(`${connector.url}/metrics`)).text();
        return (
          /relay_inbound_events_total\{platform="discord",outcome="no_route"\} [1-9]/.test(metrics) ||
          undefined
        );
      },
      15_000,
      'the unrouted message counted',
    );
    expect(inboundTexts()).not.toContain('anyone there?');
  });

  it('acknowledges a slash command at once, forwards it without its token, and answers through follow_up', async () => {
    const { status, body, interaction } = await discord.postInteraction(interactionsUrl(), {
      type: 2,
      guild_id: GUILD,
      channel_id: CHANNEL,
      channel: { id: CHANNEL, type: 0 },
      member: { user: ALICE },
      data: {
        name: 'skill',
        options: [{ type: 1, name: 'run', options: [{ type: 3, name: 'name', value: 'deploy' }] }],
      },
    });
    expect(status).toBe(200);
    expect(body).toEqual({ type: 5 });
    const frame = await until(
      () =>
        forwards().find(
          (f) =>
            f.type === 'passthrough_forward' &&
            Buffer.from(f.forward.bodyB64, 'base64').toString().includes(interaction.id),
        ),
      15_000,
      'the passthrough forward',
    );
    if (frame?.type !== 'passthrough_forward') throw new Error('forward expected');
    expect(frame.forward).toMatchObject({
      platform: 'discord',
      botId: discord.applicationId,
      method: 'POST',
      path: `/interactions/discord/${discord.applicationId}`,
    });
    const forwarded = JSON.parse(Buffer.from(frame.forward.bodyB64, 'base64').toString('utf8')) as Record<
      string,
      unknown
    >;
    expect(forwarded.token).toBeUndefined();
    expect(forwarded.id).toBe(interaction.id);
    expect(JSON.stringify(gateway.frames)).not.toContain(interaction.token);

    // The gateway derives the session from the forward as the reference does (§12).
    const decoded = parseDiscordInteraction(JSON.stringify(forwarded));
    if (!decoded) throw new Error('forward body is not an interaction');
    const source = discordInteractionSource(decoded);
    const sessionKey = buildSessionKey({ ...source, platform: normalizePlatform('discord') });
    const first = await gateway.op({
      op: 'follow_up',
      session_key: sessionKey,
      kind: DISCORD_INTERACTION_KIND,
      content: 'Deploying…',
      metadata: {},
    });
    expect(first.success).toBe(true);
    const second = await gateway.op({
      op: 'follow_up',
      session_key: sessionKey,
      kind: DISCORD_INTERACTION_KIND,
      content: 'Done.',
      metadata: {},
    });
    expect(second.success).toBe(true);
    const followUps = discord.followUps.filter((f) => f.token === interaction.token);
    expect(followUps.map((f) => [(f.body as { content: string }).content, Boolean(f.edited)])).toEqual([
      ['Deploying…', true],
      ['Done.', false],
    ]);
    // Another session has no capability; nothing reaches Discord.
    const stranger = await gateway.op({
      op: 'follow_up',
      session_key: `${sessionKey}-other`,
      kind: DISCORD_INTERACTION_KIND,
      content: 'nope',
      metadata: {},
    });
    expect(stranger).toMatchObject({ success: false });
    expect(String(stranger.error)).toMatch(/no follow-up capability/);
    expect(discord.followUps.filter((f) => f.token === interaction.token)).toHaveLength(2);
    expect(connector.output()).not.toContain(interaction.token);
  });

  it('turns a press on a prompt button into a forward acknowledged with a deferred update', async () => {
    const prompt = await gateway.op({
      op: 'prompt',
      chat_id: CHANNEL,
      content: 'Ship it?',
      prompt_kind: 'approval',
      prompt_id: 'a1b2c3.00000001',
      options: [
        { id: 'once', label: 'Yes', style: 'primary' },
        { id: 'deny', label: 'No', style: 'danger' },
      ],
      reply_to: null,
      metadata: {},
    });
    expect(prompt.success).toBe(true);
    const posted = discord.messages.get(String(prompt.message_id));
    const buttons = (
      (posted?.components ?? []) as { components: { custom_id: string; style: number }[] }[]
    )[0]?.components;
    expect(buttons?.map((b) => [b.custom_id, b.style])).toEqual([
      ['hp1:a1b2c3.00000001:once', 1],
      ['hp1:a1b2c3.00000001:deny', 4],
    ]);
    const { body, interaction } = await discord.postInteraction(interactionsUrl(), {
      type: 3,
      guild_id: GUILD,
      channel_id: CHANNEL,
      member: { user: ALICE },
      message: { id: String(prompt.message_id) },
      data: { custom_id: 'hp1:a1b2c3.00000001:once', component_type: 2 },
    });
    expect(body).toEqual({ type: 6 });
    await until(
      () =>
        forwards().find(
          (f) =>
            f.type === 'passthrough_forward' &&
            Buffer.from(f.forward.bodyB64, 'base64').toString().includes(interaction.id),
        ),
      15_000,
      'the press forwarded',
    );
  });

  it('refuses a forged interaction with 401 and answers a PING with PONG', async () => {
    const forged = await discord.postInteraction(
      interactionsUrl(),
      { type: 2, guild_id: GUILD, channel_id: CHANNEL, data: { name: 'summarize' } },
      { forge: true },
    );
    expect(forged.status).toBe(401);
    const ping = await discord.postInteraction(interactionsUrl(), { type: 1 });
    expect(ping.status).toBe(200);
    expect(ping.body).toEqual({ type: 1 });
    // Validly signed, but ten minutes old: a replay.
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const replayBody = JSON.stringify({
      type: 1,
      id: '1',
      application_id: discord.applicationId,
      token: 't',
      version: 1,
    });
    const stale = await fetch(interactionsUrl(), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-signature-ed25519': discord.sign(replayBody, old).signature,
        'x-signature-timestamp': old,
      },
      body: replayBody,
    });
    expect(stale.status).toBe(401);
    expect(await stale.json()).toEqual({ error: 'stale request signature' });
    const unsigned = await fetch(interactionsUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":1}',
    });
    expect(unsigned.status).toBe(401);
  });

  it('tells the user ephemerally when the server has no agent', async () => {
    const { body } = await discord.postInteraction(interactionsUrl(), {
      type: 2,
      guild_id: UNROUTED_GUILD,
      channel_id: UNROUTED_CHANNEL,
      member: { user: ALICE },
      data: { name: 'summarize' },
    });
    expect(body).toEqual({
      type: 4,
      data: { content: 'This server is not connected to an agent yet.', flags: 64 },
    });
  });

  it('waits out a route’s 429 and then sends; a 403 fails at once and is not retried', async () => {
    const route = new RegExp(`^POST /channels/${CHANNEL}/messages$`);
    const posts = () => discord.requests.filter((r) => route.test(`${r.method} ${r.path}`)).length;
    const before = posts();
    discord.rateLimit(route, { retryAfterSeconds: 0.3, count: 1 });
    const limited = await gateway.op({
      op: 'send',
      chat_id: CHANNEL,
      content: 'after the limit',
      reply_to: null,
      metadata: {},
    });
    expect(limited.success).toBe(true);
    expect(posts()).toBe(before + 2);

    discord.failNext(route, 403, { message: 'Missing Permissions', code: 50013 });
    const refused = await gateway.op({
      op: 'send',
      chat_id: CHANNEL,
      content: 'not allowed',
      reply_to: null,
      metadata: {},
    });
    expect(refused.success).toBe(false);
    expect(String(refused.error)).toMatch(/403.*50013.*Missing Permissions/);
    expect(refused.ambiguous).toBeUndefined();
    expect(posts()).toBe(before + 3);
  });

  it('edits, types, reacts, creates and renames threads, and reads a channel', async () => {
    const sent = await gateway.op({
      op: 'send',
      chat_id: CHANNEL,
      content: 'draft',
      reply_to: null,
      metadata: {},
    });
    const id = String(sent.message_id);
    expect(
      (await gateway.op({ op: 'edit', chat_id: CHANNEL, message_id: id, content: 'final', metadata: {} }))
        .success,
    ).toBe(true);
    expect(discord.messages.get(id)?.content).toBe('final');
    expect((await gateway.op({ op: 'typing', chat_id: CHANNEL, metadata: {} })).success).toBe(true);
    expect(discord.typing).toContain(CHANNEL);
    expect(
      (
        await gateway.op({
          op: 'react',
          chat_id: CHANNEL,
          message_id: id,
          emoji: '✅',
          remove: false,
          metadata: {},
        })
      ).success,
    ).toBe(true);
    expect(discord.messages.get(id)?.reactions).toContain('✅');
    const thread = await gateway.op({
      op: 'thread_create',
      chat_id: CHANNEL,
      thread_name: 'handoff',
      message_id: id,
      metadata: {},
    });
    expect(thread.success).toBe(true);
    const threadId = String(thread.thread_id);
    expect(discord.threads.find((t) => t.id === threadId)).toMatchObject({
      parent_id: CHANNEL,
      name: 'handoff',
    });
    const guarded = await gateway.op({
      op: 'thread_rename',
      chat_id: CHANNEL,
      message_id: threadId,
      thread_name: 'Release   plan',
      only_if_connector_created: true,
      metadata: {},
    });
    expect(guarded.success).toBe(true);
    expect(discord.channels.get(threadId)?.name ?? discord.threads.find((t) => t.id === threadId)?.name).toBe(
      'Release plan',
    );
    const clobber = await gateway.op({
      op: 'thread_rename',
      chat_id: CHANNEL,
      message_id: threadId,
      thread_name: 'Other',
      only_if_current_name: 'handoff',
      metadata: {},
    });
    expect(clobber.success).toBe(false);
    const info = await gateway.op({ op: 'get_chat_info', chat_id: CHANNEL });
    expect(info).toMatchObject({ success: true, chat_info: { name: 'general', type: 'group' } });
  });

  it('uploads a re-hosted file to the channel', async () => {
    const upload = await fetch(`${connector.url}/relay/media`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${mintUpgradeToken(gatewayId, secret, 300)}`,
        'content-type': 'text/plain',
        'x-media-filename': 'notes.txt',
      },
      body: 'release notes',
    });
    expect(upload.status).toBe(200);
    const { id } = (await upload.json()) as { id: string };
    const result = await gateway.op({
      op: 'send_media',
      chat_id: CHANNEL,
      media_kind: 'document',
      source_url: `${connector.url}/relay/media/${id}`,
      content: 'the notes',
      reply_to: null,
      metadata: {},
    });
    expect(result.success).toBe(true);
    const message = discord.messages.get(String(result.message_id));
    expect(message?.content).toBe('the notes');
    expect(message?.attachments.map((a) => [a.filename, a.bytes.toString()])).toEqual([
      ['notes.txt', 'release notes'],
    ]);
  });

  it('re-hosts a message’s attachments on the media plane; the gateway fetches them with its bearer', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    discord.dispatchMessage({
      ...mention('a picture'),
      attachments: [{ filename: 'cat.png', bytes: png, content_type: 'image/png' }],
    });
    const frame = await nextInbound('a picture');
    expect(frame.event.message_type).toBe('photo');
    const url = frame.event.media_urls[0] ?? '';
    expect(url).toMatch(new RegExp(`^${connector.url}/relay/media/[0-9a-f]{32}$`));
    expect(frame.event.media?.[0]).toMatchObject({
      url,
      kind: 'image',
      mime: 'image/png',
      filename: 'cat.png',
      size: png.length,
    });
    const fetched = await fetch(url, {
      headers: { authorization: `Bearer ${mintUpgradeToken(gatewayId, secret, 300)}` },
    });
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(png);
  });

  it('slows down under a global 429 and still sends', async () => {
    const route = new RegExp(`^POST /channels/${CHANNEL}/messages$`);
    discord.rateLimit(route, { retryAfterSeconds: 0.5, global: true, count: 1 });
    const before = discord.requests.filter((r) => route.test(`${r.method} ${r.path}`)).length;
    const result = await gateway.op({
      op: 'send',
      chat_id: CHANNEL,
      content: 'after the global limit',
      reply_to: null,
      metadata: {},
    });
    expect(result.success).toBe(true);
    expect(discord.requests.filter((r) => route.test(`${r.method} ${r.path}`)).length).toBe(before + 2);
    await until(
      () => (/discord global rate limit/.test(connector.output()) ? true : undefined),
      5_000,
      'the global limit logged',
    );
  });

  it('makes one event of a dispatch Discord sends twice, and of what a RESUME replays', async () => {
    const message = discord.dispatchMessage(mention('said once'));
    discord.dispatch('MESSAGE_CREATE', message);
    await nextInbound('said once');
    const resumesBefore = discord.gateway.resumes;
    discord.dropConnections();
    discord.dispatchMessage(mention('while the socket was down'));
    await nextInbound('while the socket was down');
    expect(discord.gateway.resumes).toBeGreaterThan(resumesBefore);
    discord.dispatchMessage(mention('marker after the resume'));
    await nextInbound('marker after the resume');
    const count = (text: string) => inboundTexts().filter((t) => t === text).length;
    expect(count('said once')).toBe(1);
    expect(count('while the socket was down')).toBe(1);
  });

  it('acknowledges an interaction of an unknown type with a deferred reply, never a 500, and forwards nothing', async () => {
    const before = forwards().length;
    const { status, body } = await discord.postInteraction(interactionsUrl(), {
      type: 42,
      guild_id: GUILD,
      channel_id: CHANNEL,
      member: { user: ALICE },
    });
    expect(status).toBe(200);
    expect(body).toEqual({ type: 5 });
    const malformed = discord.sign('{"type":');
    const broken = await fetch(interactionsUrl(), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-signature-ed25519': malformed.signature,
        'x-signature-timestamp': malformed.timestamp,
      },
      body: '{"type":',
    });
    expect(broken.status).toBe(400);
    expect(await broken.json()).toEqual({ error: 'malformed interaction' });
    discord.dispatchMessage(mention('marker after the odd interactions'));
    await nextInbound('marker after the odd interactions');
    expect(forwards()).toHaveLength(before);
    expect(connector.output()).toMatch(/discord interaction of an unknown type/);
  });

  it('after a restart resumes the session (no READY), keeps what was sent meanwhile, and still knows its mentions', async () => {
    const resumesBefore = discord.gateway.resumes;
    const identifiesBefore = discord.gateway.identifies;
    gateway.close();
    const firstOutput = connector.output();
    await connector.stop();
    // Sent while no connector runs: Discord keeps it for the resumed session.
    discord.dispatchMessage(mention('while the connector was down'));
    connector = await startConnectorProcess(db, {
      RELAY_LOG_LEVEL: 'info',
      DISCORD_BOT_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_PUBLIC_KEY: discord.publicKeyHex,
      DISCORD_API_ROOT: discord.apiRoot,
    });
    await until(
      () => (discord.gateway.resumes > resumesBefore ? true : undefined),
      20_000,
      'the session resumed',
    );
    expect(discord.gateway.identifies).toBe(identifiesBefore);
    gateway = new TestRelayClient(`${connector.url.replace('http', 'ws')}/relay`, gatewayId, secret);
    await gateway.connect();
    await gateway.hello('discord', discord.applicationId);
    await nextInbound('while the connector was down');
    // requireAddress still holds and a mention still counts: the bot knows its id without READY.
    discord.dispatchMessage({
      channel_id: CHANNEL,
      guild_id: GUILD,
      content: 'unaddressed after restart',
      author: ALICE,
    });
    discord.dispatchMessage(mention('addressed after restart'));
    await nextInbound('addressed after restart');
    expect(inboundTexts()).not.toContain('unaddressed after restart');
    expect(firstOutput + connector.output()).not.toContain(discord.token);
  });

  it('never writes the bot token to its output', () => {
    expect(connector.output()).not.toContain(discord.token);
    expect(connector.output()).not.toContain('"token"');
  });
});
