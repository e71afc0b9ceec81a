import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeDiscord, startFakeDiscord } from '../support/fake-discord.js';
import { tempDir, until } from '../support/processes.js';
import { type RelayStack, startRelayStack } from '../support/relay-stack.js';

/**
 * Discord with real processes (fake Discord ⇄ connector ⇄ our gateway running the echo agent):
 * a mention in a guild channel gets its answer in the channel; a slash command is acknowledged at
 * once and answered by replacing the "thinking…" reply through `follow_up`; a press on the agent's
 * buttons comes back to the agent, which answers through a follow-up message.
 */

const dir = tempDir('gateway-discord');
const GUILD = '1100000000000000001';
const CHANNEL = '1200000000000000001';
const ALICE = { id: '700000000000000001', username: 'alice', global_name: 'Alice' };
let discord: FakeDiscord;
let stack: RelayStack | undefined;

beforeAll(async () => {
  discord = await startFakeDiscord({ heartbeatIntervalMs: 1_000 });
  discord.addChannel({ id: CHANNEL, type: 0, name: 'general', guild_id: GUILD });
  stack = await startRelayStack({
    dir: dir.path,
    platform: 'discord',
    routeKey: GUILD,
    connectorEnv: {
      DISCORD_BOT_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_PUBLIC_KEY: discord.publicKeyHex,
      DISCORD_API_ROOT: discord.apiRoot,
    },
    gatewayEnv: {
      GATEWAY_RELAY_PLATFORMS: 'discord',
      GATEWAY_RELAY_BOT_IDS: JSON.stringify({ discord: { botId: discord.applicationId } }),
    },
    agentEnv: { HERMES_AGENT: 'echo' },
  });
  await discord.waitForReady();
}, 90_000);

afterAll(async () => {
  await stack?.stop();
  await discord?.close();
  dir.remove();
});

const interactionsUrl = () => `${stack?.connector.url}/discord/interactions`;
const channelMessages = () => [...discord.messages.values()].filter((m) => m.channel_id === CHANNEL);

describe('Discord through our gateway', () => {
  it('declares /stop and the agent’s commands in its hello; the connector registers them for the guild', async () => {
    const registered = await until(
      () => discord.commands.find((entry) => entry.scope === GUILD),
      20_000,
      'the guild’s slash commands',
    );
    expect((registered.commands as { name: string }[]).map((command) => command.name)).toEqual([
      'stop',
      'help',
      'image',
      'file',
      'ask',
      'slow',
    ]);
  });

  it('answers a mention in a guild channel in that channel, as a reply to it', async () => {
    const asked = discord.dispatchMessage({
      channel_id: CHANNEL,
      guild_id: GUILD,
      content: `<@${discord.botUserId}> hello from Discord`,
      author: ALICE,
    });
    const reply = await until(
      () => channelMessages().find((m) => m.content.includes('hello from Discord') && m.id !== asked.id),
      20_000,
      'the echo reply in the channel',
    );
    expect(reply.content).toMatch(/^echo: hello from Discord/);
    expect(reply.author?.id).toBe(discord.botUserId);
  });

  it('acknowledges a slash command at once and replaces the “thinking…” reply with the answer', async () => {
    const { status, body, interaction } = await discord.postInteraction(interactionsUrl(), {
      type: 2,
      guild_id: GUILD,
      channel_id: CHANNEL,
      channel: { id: CHANNEL, type: 0 },
      member: { user: ALICE },
      data: { name: 'weather', options: [{ type: 3, name: 'city', value: 'Oslo' }] },
    });
    expect(status).toBe(200);
    expect(body).toEqual({ type: 5 });
    const answer = await until(
      () => discord.followUps.find((f) => f.token === interaction.token),
      20_000,
      'the follow-up',
    );
    expect(answer.edited).toBe(true);
    expect((answer.body as { content: string }).content).toMatch(/\/weather Oslo/);
    expect(stack?.connector.output()).not.toContain(interaction.token);
    expect(stack?.gateway.output()).not.toContain(interaction.token);
  });

  it('a slash command answered only with buttons still replaces its “thinking…” reply', async () => {
    const { body, interaction } = await discord.postInteraction(interactionsUrl(), {
      type: 2,
      guild_id: GUILD,
      channel_id: CHANNEL,
      channel: { id: CHANNEL, type: 0 },
      member: { user: { id: '700000000000000002', username: 'bob' } },
      data: { name: 'ask', options: [{ type: 3, name: 'question', value: 'Deploy now?' }] },
    });
    expect(body).toEqual({ type: 5 });
    await until(() => channelMessages().find((m) => m.content === 'Deploy now?'), 20_000, 'the buttons');
    const answer = await until(
      () => discord.followUps.find((f) => f.token === interaction.token),
      20_000,
      'the deferred reply replaced',
    );
    expect(answer.edited).toBe(true);
    expect((answer.body as { content: string }).content).toBe('✅ Done.');
  });

  it('/ask: buttons in the channel; a press comes back to the agent, which answers in a follow-up', async () => {
    discord.dispatchMessage({
      channel_id: CHANNEL,
      guild_id: GUILD,
      content: `<@${discord.botUserId}> /ask Ship it?`,
      author: ALICE,
    });
    const question = await until(
      () => channelMessages().find((m) => m.content === 'Ship it?'),
      20_000,
      'the question with buttons',
    );
    const buttons = (
      (question.components ?? []) as { components: { label: string; custom_id: string }[] }[]
    ).flatMap((row) => row.components);
    const yes = buttons.find((button) => button.label === 'Yes');
    expect(yes?.custom_id).toMatch(/^hp1:[0-9a-f]{6}\.[0-9a-f]{8}:yes$/);
    const { body, interaction } = await discord.postInteraction(interactionsUrl(), {
      type: 3,
      guild_id: GUILD,
      channel_id: CHANNEL,
      member: { user: ALICE },
      message: { id: question.id },
      data: { custom_id: yes?.custom_id, component_type: 2 },
    });
    expect(body).toEqual({ type: 6 });
    const answer = await until(
      () => discord.followUps.find((f) => f.token === interaction.token),
      20_000,
      'the answer to the press',
    );
    expect((answer.body as { content: string }).content).toBe('You chose: Yes');
    expect(answer.edited).toBeFalsy();
  });
});
