import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { DiscordAPIError, HTTPError, type RawFile, REST } from '@discordjs/rest';
import { type SessionInfo, WebSocketManager, WebSocketShardEvents } from '@discordjs/ws';
import {
  type APIChannel,
  type APIGatewayBotInfo,
  type APIMessage,
  GatewayDispatchEvents,
  type GatewayDispatchPayload,
  GatewayIntentBits,
  Routes,
} from 'discord-api-types/v10';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { backoffDelay } from '../../../common/backoff.js';
import { boundedCache } from '../../../common/cache.js';
import { neverSent } from '../../../common/errors.js';
import { redact } from '../../../common/redact.js';
import {
  type CapabilityDescriptor,
  CONTRACT_VERSION,
  codePointLength,
  DISCORD_INTERACTION,
  DISCORD_THREAD_CHANNEL_TYPES,
  type DiscordInteraction,
  discordInteractionEvent,
  type EditAction,
  egressDeclined,
  encodePromptToken,
  type FollowUpAction,
  failedResult,
  type GetChatInfoAction,
  indexForBudget,
  isPlainObject,
  MEDIA_MAX_BYTES,
  mediaIdFromUrl,
  type OutboundResult,
  type PromptAction,
  parseDiscordInteraction,
  parseJsonBytes,
  type ReactAction,
  type SendAction,
  type SendMediaAction,
  type ThreadCreateAction,
  type ThreadRenameAction,
  type TypingAction,
} from '../../../protocol/index.js';
import { botLeaseName } from '../lease.js';
import { NO_FOLLOW_UP } from '../run-action.js';
import type {
  CommandDeclaration,
  InboundAttachment,
  IngestOutcome,
  PlatformAdapter,
  PlatformContext,
  PlatformInbound,
} from '../types.js';
import { type DiscordChannelFacts, type DiscordFile, normaliseDiscordMessage } from './inbound.js';
import { discordPublicKey, isFreshTimestamp, verifyDiscordSignature } from './signature.js';
import { InteractionVault } from './vault.js';

/**
 * Discord as a connector platform: the Gateway socket (`@discordjs/ws`: heartbeats, RESUME,
 * sharding) for messages, the interactions endpoint for slash commands and buttons, REST
 * (`@discordjs/rest`: per-route buckets, `retry_after`, the global limit) for every op.
 *
 * Durability and order: messages of one channel are handled one after another, in dispatch order
 * (so a session's order holds), channels side by side (so their queueing shares group commits).
 * The shard's session is saved in the shared platform state with a watermark: the highest
 * sequence below which every dispatch is queued (or deliberately skipped), written every
 * {@link SESSION_SAVE_INTERVAL_MS} and on stop. An instance that takes the lease over RESUMEs from
 * there and Discord replays what followed; a replayed message already queued is recognised by its
 * id in the outbox's own transaction and skipped.
 */

export const DISCORD_INTERACTIONS_PATH = '/discord/interactions';
export const DISCORD_NO_ROUTE_NOTICE = 'This server is not connected to an agent yet.';
const DISCORD_NOT_DELIVERED_NOTICE = 'The agent here cannot take this right now; please try again later.';
const DISCORD_OLD_GATEWAY_NOTICE =
  'The agent for this server cannot take slash commands or buttons: its gateway is of an older generation.';
const DISCORD_DEFAULT_API_ROOT = 'https://discord.com/api';
/** Discord wants an answer within 3 s; the forward is usually queued in milliseconds. */
const INTERACTION_ACK_WITHIN_MS = 2_000;
const INTERACTION_BODY_LIMIT = 256 * 1024;
/** How long a stop waits for a connect in flight, the socket's close and the messages in hand. */
const STOP_WAIT_MS = 5_000;
/** Gateway close codes after which the library does not reconnect: the token or the intents. */
const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([4004, 4013, 4014]);
/** How often a shard's watermark is saved while it moves. */
const SESSION_SAVE_INTERVAL_MS = 250;
/** A shard's saved session outlives a quiet day; Discord refuses one it no longer knows (op 9). */
const SESSION_TTL_MS = 24 * 60 * 60_000;
const COMMANDS_TTL_MS = 30 * 24 * 60 * 60_000;
const THREAD_NAME_TTL_MS = 7 * 24 * 60 * 60_000;
const FILE_DOWNLOAD_TIMEOUT_MS = 30_000;
/** Discord's upload cap for bots without boosts. */
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
const CHANNEL_CACHE = { max: 50_000, ttlMs: 10 * 60_000 };
const STORE_RETRY = { baseMs: 500, capMs: 30_000 };
/** Buttons: 5 per row, 5 rows. */
const MAX_PROMPT_OPTIONS = 25;
const BUTTON_STYLE: Record<string, number> = { primary: 1, secondary: 2, success: 3, danger: 4 };
/** Interaction callback types. */
const CALLBACK = { pong: 1, message: 4, deferredMessage: 5, deferredUpdate: 6, autocomplete: 8 } as const;
const EPHEMERAL = 1 << 6;

export interface DiscordAdapterOptions {
  /** The bot token. Never logged. */
  token: string;
  applicationId: string;
  /** The application's Ed25519 public key (64 hex characters, from the developer portal). */
  publicKey: string;
  /** `DISCORD_API_ROOT`: REST root without the version, default https://discord.com/api. */
  apiRoot?: string;
  /** `DISCORD_GATEWAY_URL`: the Gateway socket address instead of asking `GET /gateway/bot`. */
  gatewayUrl?: string;
  log: Logger;
  /** Extra wait after a rate limit resets (ms; @discordjs/rest's default is 50). */
  rateLimitOffsetMs?: number;
  now?: () => number;
}

type SavedSession = SessionInfo;

export class DiscordAdapter implements PlatformAdapter {
  readonly name = 'discord';

  private readonly rest: REST;
  private readonly log: Logger;
  private readonly token: string;
  private readonly applicationId: string;
  private readonly publicKey;
  private readonly gatewayUrl: string | undefined;
  private readonly apiOrigin: string;
  private readonly now: () => number;
  private context: PlatformContext | undefined;
  private vault: InteractionVault | undefined;
  private manager: WebSocketManager | undefined;
  private stopping = false;
  /** Ends a store retry's wait when the adapter stops. */
  private stopController = new AbortController();
  /** The tail of each channel's dispatches in hand: a channel's messages go one after another. */
  private readonly channelTails = new Map<string, Promise<void>>();
  /** Per shard: sequences in hand, the highest seen, the watermark last saved. */
  private readonly progress = new Map<number, { pending: Set<number>; highest: number; saved: number }>();
  private saveTimer: NodeJS.Timeout | undefined;
  /** Which start the callbacks belong to (a stop moves it on). */
  private generation = 0;
  private connecting: Promise<void> | undefined;
  /** The sessions the library runs, by shard (its own view; the shared copy lags to what is queued). */
  private readonly sessions = new Map<number, SavedSession>();
  private botUserId: string | undefined;
  private readonly channels = boundedCache<string, DiscordChannelFacts>(CHANNEL_CACHE);
  /** Guilds (or DM channels) already logged as having no route. */
  private readonly noticedRoutes = boundedCache<string, true>({ max: 10_000, ttlMs: 24 * 60 * 60_000 });
  /** Slash-command registrations, one after another. */
  private registering: Promise<void> = Promise.resolve();
  private unauthorized = false;

  constructor(options: DiscordAdapterOptions) {
    this.token = options.token;
    this.applicationId = options.applicationId;
    this.publicKey = discordPublicKey(options.publicKey);
    this.gatewayUrl = options.gatewayUrl;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    const apiRoot = (options.apiRoot || DISCORD_DEFAULT_API_ROOT).replace(/\/+$/, '');
    this.apiOrigin = new URL(apiRoot).origin;
    this.rest = new REST({
      api: apiRoot,
      version: '10',
      offset: options.rateLimitOffsetMs ?? 50,
      // Discord bans after 10,000 invalid requests in 10 minutes: warn long before.
      invalidRequestWarningInterval: 500,
    }).setToken(this.token);
    this.rest.on('rateLimited', (info) => {
      this.log[info.global ? 'warn' : 'info'](
        { route: info.route, retryAfterMs: info.retryAfter, global: info.global, scope: info.scope },
        info.global
          ? 'discord global rate limit: every request waits'
          : 'discord rate limit on a route: its requests wait',
      );
    });
    this.rest.on('invalidRequestWarning', (info) => {
      this.log.warn(
        { count: info.count, remainingMs: info.remainingTime },
        'discord: many invalid requests (401/403/429) in 10 minutes; at 10,000 Discord bans the bot for an hour',
      );
    });
  }

  descriptor(): Omit<CapabilityDescriptor, 'supported_ops'> {
    return {
      contract_version: CONTRACT_VERSION,
      platform: 'discord',
      label: 'Discord',
      max_message_length: 2000,
      supports_draft_streaming: false,
      supports_edit: true,
      supports_threads: true,
      markdown_dialect: 'discord',
      len_unit: 'chars',
      emoji: '\u{1F3AE}',
      platform_hint:
        'You are chatting on Discord. Replies are rendered as Discord markdown (**bold**, *italic*, `code`, ```blocks```, > quotes); messages hold at most 2000 characters.',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    };
  }

  /** One Gateway session per bot in a cluster; named after the bot, not its token. */
  exclusiveLease(): string {
    return botLeaseName('discord', this.token);
  }

  attach(context: PlatformContext): void {
    this.context = context;
    if (context.state) this.vault = new InteractionVault(context.state, this.applicationId, this.now);
  }

  async start(context: PlatformContext): Promise<void> {
    if (this.manager) return;
    this.attach(context);
    this.stopping = false;
    this.stopController = new AbortController();
    this.botUserId ??= botUserIdFromToken(this.token);
    // Every callback checks it belongs to the running manager: a shard the library keeps alive
    // after a stop (it may, while connecting) must neither ingest nor write the shared session.
    const generation = ++this.generation;
    const live = () => this.generation === generation && !this.stopping;
    const gatewayUrl = this.gatewayUrl;
    const manager = new (class extends WebSocketManager {
      override async fetchGatewayInformation(force?: boolean): Promise<APIGatewayBotInfo> {
        if (!gatewayUrl) return super.fetchGatewayInformation(force);
        return {
          url: gatewayUrl,
          shards: 1,
          session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 },
        };
      }
    })({
      token: this.token,
      intents:
        GatewayIntentBits.Guilds |
        GatewayIntentBits.GuildMessages |
        GatewayIntentBits.DirectMessages |
        GatewayIntentBits.MessageContent,
      rest: this.rest,
      retrieveSessionInfo: (shardId) => (live() ? this.retrieveSession(shardId) : null),
      updateSessionInfo: (shardId, info) => (live() ? this.updateSession(shardId, info) : undefined),
    });
    manager.on(WebSocketShardEvents.Dispatch, (payload, shardId) => {
      if (live()) this.takeDispatch(payload, shardId);
    });
    manager.on(WebSocketShardEvents.Ready, (data, shardId) => {
      if (!live()) return;
      this.botUserId = data.user.id;
      this.log.info(
        { shardId, botUserId: data.user.id, guilds: data.guilds.length },
        'discord gateway ready',
      );
    });
    manager.on(WebSocketShardEvents.Resumed, (shardId) => {
      if (live()) this.log.info({ shardId }, 'discord gateway resumed');
    });
    manager.on(WebSocketShardEvents.Closed, (code, shardId) => {
      if (!live()) return;
      if (FATAL_CLOSE_CODES.has(code)) {
        this.unauthorized = code === 4004;
        this.log.error(
          { shardId, code },
          code === 4004
            ? 'Discord rejected the bot token (4004 Authentication failed): check DISCORD_BOT_TOKEN. The Discord gateway has stopped.'
            : 'Discord refused the gateway session (intents not allowed: turn on the Message Content intent in the developer portal). The Discord gateway has stopped.',
        );
      } else this.log.warn({ shardId, code }, 'discord gateway closed; reconnecting');
    });
    manager.on(WebSocketShardEvents.Error, (error, shardId) => {
      if (live()) this.log.warn({ shardId, err: this.describe(error) }, 'discord gateway error');
    });
    this.manager = manager;
    this.saveTimer = setInterval(() => void this.saveWatermarks(), SESSION_SAVE_INTERVAL_MS);
    this.saveTimer.unref();
    if (!this.botUserId) void this.lookUpBotUser(live);
    // In the background: the connector and its other platforms never wait on Discord being
    // reachable. A failed start (Discord unreachable, a 5xx) is tried again until it works or the
    // adapter stops; a refused token is final.
    this.log.info('discord gateway connecting');
    this.connecting = this.connectUntilStarted(manager, live);
  }

  private async connectUntilStarted(manager: WebSocketManager, live: () => boolean): Promise<void> {
    for (let attempt = 1; live(); attempt += 1) {
      try {
        await manager.connect();
        return;
      } catch (error) {
        if (!live()) return;
        if (error instanceof DiscordAPIError && error.status === 401) {
          this.unauthorized = true;
          this.log.error(
            'Discord rejected the bot token (401): check DISCORD_BOT_TOKEN. The Discord gateway has stopped; the other platforms keep running.',
          );
          return;
        }
        const delay = backoffDelay(attempt, { baseMs: 1_000, capMs: 60_000, jitter: 'full' });
        this.log.warn(
          { err: this.describe(error), retryInMs: delay },
          'discord gateway did not start; retrying',
        );
        await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
      }
    }
  }

  /** The bot's user id, for mentions, when the token does not carry it (READY sets it too). */
  private async lookUpBotUser(live: () => boolean): Promise<void> {
    try {
      const me = (await this.rest.get(Routes.user('@me'))) as { id?: unknown };
      if (live() && typeof me.id === 'string' && !this.botUserId) this.botUserId = me.id;
    } catch (error) {
      this.log.debug({ err: this.describe(error) }, 'discord bot user not looked up; READY will say');
    }
  }

  async stop(): Promise<void> {
    const manager = this.manager;
    if (!manager) return;
    this.stopping = true;
    this.generation += 1;
    this.stopController.abort();
    this.manager = undefined;
    clearInterval(this.saveTimer);
    // A connect in flight settles first (bounded), so the shards it spawns are the ones destroyed;
    // 4200 leaves the session resumable for whoever runs the bot next. The library can wait forever
    // for a socket that is still handshaking: bounded too.
    await withTimeout(this.connecting ?? Promise.resolve(), STOP_WAIT_MS);
    const destroyed = await withTimeout(
      Promise.resolve(manager.destroy({ code: 4200, reason: 'connector stopping' })).then(
        () => true,
        (error: unknown) => {
          this.log.debug({ err: this.describe(error) }, 'discord gateway not closed cleanly');
          return true;
        },
      ),
      STOP_WAIT_MS,
    );
    if (!destroyed) this.log.warn('discord gateway did not close in time; its events are ignored');
    await withTimeout(Promise.all(this.channelTails.values()), STOP_WAIT_MS);
    await this.saveWatermarks();
    this.log.info('discord gateway stopped');
  }

  /** `unauthorized` after Discord refused the token. */
  get state(): 'running' | 'stopped' | 'unauthorized' {
    return this.unauthorized ? 'unauthorized' : this.manager ? 'running' : 'stopped';
  }

  // --- Gateway sessions ----------------------------------------------------------------------------

  private sessionKey(shardId: number): string {
    return `discord:${this.applicationId}:session:${shardId}`;
  }

  private async retrieveSession(shardId: number): Promise<SavedSession | null> {
    const live = this.sessions.get(shardId);
    if (live) return live;
    const raw = await this.context?.state?.get(this.sessionKey(shardId)).catch(() => null);
    if (!raw) return null;
    try {
      const saved = JSON.parse(raw) as SavedSession;
      this.sessions.set(shardId, saved);
      this.progress.set(shardId, { pending: new Set(), highest: saved.sequence, saved: saved.sequence });
      this.log.info({ shardId, sequence: saved.sequence }, 'discord: resuming the saved gateway session');
      return saved;
    } catch {
      return null;
    }
  }

  private async updateSession(shardId: number, info: SavedSession | null): Promise<void> {
    const previous = this.sessions.get(shardId);
    if (!info) {
      this.sessions.delete(shardId);
      // Stopping keeps the shared copy, so the next holder resumes instead of losing the gap.
      if (!this.stopping) await this.context?.state?.delete(this.sessionKey(shardId)).catch(() => undefined);
      return;
    }
    this.sessions.set(shardId, info);
    // A new session (READY, or one resumed from the shared copy): saved at once, its watermark
    // starting where the session does; later sequences are saved as dispatches are queued.
    if (previous?.sessionId !== info.sessionId) {
      this.progress.set(shardId, { pending: new Set(), highest: info.sequence, saved: info.sequence });
      await this.saveSession(shardId, info.sequence);
    }
  }

  /** Save each shard's watermark that moved since it was last saved. */
  private async saveWatermarks(): Promise<void> {
    for (const [shardId, progress] of this.progress) {
      let watermark = progress.highest;
      for (const seq of progress.pending) if (seq - 1 < watermark) watermark = seq - 1;
      if (watermark <= progress.saved) continue;
      progress.saved = watermark;
      await this.saveSession(shardId, watermark);
    }
  }

  private async saveSession(shardId: number, sequence: number): Promise<void> {
    const live = this.sessions.get(shardId);
    const state = this.context?.state;
    if (!live || !state) return;
    await state
      .put(this.sessionKey(shardId), JSON.stringify({ ...live, sequence }), SESSION_TTL_MS)
      .catch((error: unknown) =>
        this.log.warn(
          { shardId, err: this.describe(error) },
          'discord session not saved; a takeover may repeat',
        ),
      );
  }

  // --- dispatches ----------------------------------------------------------------------------------

  /**
   * A dispatch in hand: a message joins its channel's line; anything else is applied at once. Its
   * sequence counts as pending until handled, holding the shard's watermark below it.
   */
  private takeDispatch(payload: GatewayDispatchPayload, shardId: number): void {
    const seq = typeof payload.s === 'number' ? payload.s : undefined;
    const progress = this.progress.get(shardId);
    if (seq !== undefined && progress) {
      progress.pending.add(seq);
      if (seq > progress.highest) progress.highest = seq;
    }
    const done = () => {
      if (seq !== undefined) progress?.pending.delete(seq);
    };
    if (payload.t !== GatewayDispatchEvents.MessageCreate) {
      this.applyDispatch(payload);
      done();
      return;
    }
    const channelId = payload.d.channel_id;
    const tail = (this.channelTails.get(channelId) ?? Promise.resolve())
      .then(() => this.handleMessage(payload.d))
      .catch((error: unknown) =>
        this.log.error({ err: this.describe(error) }, 'discord message not understood; skipped'),
      )
      .finally(() => {
        done();
        if (this.channelTails.get(channelId) === tail) this.channelTails.delete(channelId);
      });
    this.channelTails.set(channelId, tail);
  }

  private applyDispatch(payload: GatewayDispatchPayload): void {
    try {
      switch (payload.t) {
        case GatewayDispatchEvents.GuildCreate:
          for (const channel of [...(payload.d.channels ?? []), ...(payload.d.threads ?? [])])
            this.rememberChannel(channel);
          break;
        case GatewayDispatchEvents.ChannelCreate:
        case GatewayDispatchEvents.ChannelUpdate:
        case GatewayDispatchEvents.ThreadCreate:
        case GatewayDispatchEvents.ThreadUpdate:
          this.rememberChannel(payload.d);
          break;
        default:
          break;
      }
    } catch (error) {
      this.log.error(
        { event: payload.t, err: this.describe(error) },
        'discord dispatch not understood; skipped',
      );
    }
  }

  private rememberChannel(
    channel: Pick<APIChannel, 'id' | 'type'> & { name?: string | null; parent_id?: string | null },
  ): void {
    this.channels.set(channel.id, {
      type: channel.type,
      ...(channel.name ? { name: channel.name } : {}),
      ...(channel.parent_id ? { parentId: channel.parent_id } : {}),
    });
  }

  /** What the cache knows of a guild channel, else what Discord says (once, then cached). */
  private async channelFacts(channelId: string): Promise<DiscordChannelFacts | undefined> {
    const cached = this.channels.get(channelId);
    if (cached) return cached;
    try {
      const channel = (await this.rest.get(Routes.channel(channelId))) as APIChannel & {
        parent_id?: string | null;
        name?: string | null;
      };
      this.rememberChannel(channel);
      return this.channels.get(channelId);
    } catch (error) {
      this.log.debug({ channelId, err: this.describe(error) }, 'discord channel not looked up');
      return undefined;
    }
  }

  private async handleMessage(message: APIMessage & { guild_id?: string }): Promise<void> {
    const context = this.context;
    if (!context) return;
    if (this.botUserId && message.author.id === this.botUserId) return;
    const channel = message.guild_id ? await this.channelFacts(message.channel_id) : undefined;
    const inbound = normaliseDiscordMessage(message, this.botUserId, channel);
    if (!inbound) return;
    const { files, ...routed } = inbound;
    const dedupeKey = `discord:${this.applicationId}:message:${message.id}`;
    // A replayed message with files: known before its files are fetched again (the queueing
    // checks once more, atomically).
    if (files.length > 0 && (await context.state?.get(dedupeKey).catch(() => null))) return;
    // A RESUME replays what followed the saved sequence, some of it perhaps queued already: the
    // message id makes the queueing happen once (in the outbox's own transaction).
    const withFiles: PlatformInbound = {
      ...routed,
      dedupeKey,
      ...(files.length ? { attachments: files.map((file) => this.attachment(file)) } : {}),
    };
    for (let attempt = 1; ; attempt += 1) {
      let outcome: IngestOutcome;
      try {
        outcome = await context.ingest(withFiles);
      } catch (error) {
        outcome = { ok: false, reason: 'store_error', message: this.describe(error) };
      }
      if (outcome.ok) return;
      if (outcome.reason === 'duplicate') {
        this.log.debug({ messageId: message.id }, 'discord message already queued (a replay); skipped');
        return;
      }
      if (outcome.reason === 'no_route') {
        if (!this.noticedRoutes.has(inbound.routeKey)) {
          this.noticedRoutes.set(inbound.routeKey, true);
          this.log.warn(
            { routeKey: inbound.routeKey, chatType: inbound.event.source.chat_type },
            'discord server has no route to a tenant; add one with `hermes connector route add --platform discord --key <guild id>`',
          );
        }
        return;
      }
      if (outcome.reason !== 'store_error') {
        if (outcome.reason === 'unsupported')
          this.log.warn({ messageId: message.id, err: outcome.message }, 'discord message not delivered');
        return;
      }
      // The store failed: the message is kept in order and tried again; Discord will not resend it.
      if (this.stopping) {
        this.log.warn(
          { messageId: message.id },
          'discord message not stored before stopping; a resume replays it',
        );
        return;
      }
      const delay = backoffDelay(attempt, {
        baseMs: STORE_RETRY.baseMs,
        capMs: STORE_RETRY.capMs,
        jitter: 'none',
      });
      this.log.warn({ messageId: message.id, retryInMs: delay }, 'discord message not stored; retrying');
      await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
    }
  }

  /** Fetched only when routed, from Discord's CDN (or the configured API's host, for tests). */
  private attachment(file: DiscordFile): InboundAttachment {
    const { url, size, ...described } = file;
    return {
      ...described,
      open: async () => {
        const parsed = URL.canParse(url) ? new URL(url) : undefined;
        const trusted =
          parsed &&
          ((parsed.protocol === 'https:' &&
            /(^|\.)(discordapp\.com|discordapp\.net|discord\.com)$/i.test(parsed.hostname)) ||
            parsed.origin === this.apiOrigin);
        if (!trusted) throw new Error('discord attachment URL is not on Discord’s CDN; not fetched');
        if (size !== undefined && size > MEDIA_MAX_BYTES)
          throw new Error(
            `discord attachment of ${size} bytes is over the ${MEDIA_MAX_BYTES}-byte media cap`,
          );
        // No redirects: the host checked above is the one fetched.
        const response = await fetch(url, {
          signal: AbortSignal.timeout(FILE_DOWNLOAD_TIMEOUT_MS),
          redirect: 'error',
        });
        if (!response.ok || !response.body)
          throw new Error(`discord attachment answered HTTP ${response.status}`);
        return Readable.fromWeb(response.body as WebReadableStream);
      },
    };
  }

  // --- interactions --------------------------------------------------------------------------------

  async registerRoutes(app: FastifyInstance): Promise<void> {
    await app.register(async (scope) => {
      // The signature covers the exact bytes: the body is kept raw here.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(
        '*',
        { parseAs: 'buffer', bodyLimit: INTERACTION_BODY_LIMIT },
        (_request, body, done) => done(null, body),
      );
      scope.post(DISCORD_INTERACTIONS_PATH, async (request, reply) => {
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const signature = request.headers['x-signature-ed25519'];
        const timestamp = request.headers['x-signature-timestamp'];
        if (
          !verifyDiscordSignature(
            this.publicKey,
            typeof signature === 'string' ? signature : undefined,
            typeof timestamp === 'string' ? timestamp : undefined,
            body,
          )
        )
          return reply.code(401).send({ error: 'invalid request signature' });
        if (!isFreshTimestamp(typeof timestamp === 'string' ? timestamp : undefined, this.now())) {
          // Validly signed but old: a replay, or this machine's clock is wrong (then every one is).
          this.log.warn(
            { timestamp },
            'discord interaction signed more than 5 minutes from this clock; refused (check the clock if this repeats)',
          );
          return reply.code(401).send({ error: 'stale request signature' });
        }
        const interaction = parseDiscordInteraction(body);
        if (!interaction) return reply.code(400).send({ error: 'malformed interaction' });
        return reply.send(await this.answerInteraction(interaction, body));
      });
    });
  }

  /** The HTTP answer to a verified interaction; forwards it to the tenant's gateway on the way. */
  private async answerInteraction(interaction: DiscordInteraction, body: Buffer): Promise<unknown> {
    switch (interaction.type) {
      case DISCORD_INTERACTION.ping:
        return { type: CALLBACK.pong };
      case DISCORD_INTERACTION.autocomplete:
        // Suggestions are wanted at once; an agent turn cannot give them.
        return { type: CALLBACK.autocomplete, data: { choices: [] } };
      case DISCORD_INTERACTION.applicationCommand:
      case DISCORD_INTERACTION.messageComponent:
      case DISCORD_INTERACTION.modalSubmit:
        break;
      default:
        this.log.warn(
          { type: interaction.type, interactionId: interaction.id },
          'discord interaction of an unknown type; acknowledged, not forwarded',
        );
        return { type: CALLBACK.deferredMessage };
    }
    const ack =
      interaction.type === DISCORD_INTERACTION.messageComponent
        ? { type: CALLBACK.deferredUpdate }
        : { type: CALLBACK.deferredMessage };
    const notice = (content: string) => ({ type: CALLBACK.message, data: { content, flags: EPHEMERAL } });
    const context = this.context;
    if (!context) return notice(DISCORD_NOT_DELIVERED_NOTICE);
    const outcome = this.forwardInteraction(context, interaction, body).catch(
      (error: unknown): IngestOutcome => ({
        ok: false,
        reason: 'store_error',
        message: this.describe(error),
      }),
    );
    const waited = new AbortController();
    const settled = await Promise.race([
      outcome,
      sleep(INTERACTION_ACK_WITHIN_MS, undefined, { signal: waited.signal, ref: false }).then(
        () => undefined,
        () => undefined,
      ),
    ]);
    waited.abort();
    if (settled === undefined) {
      void outcome.then((late) => {
        if (!late.ok)
          this.log.warn(
            { interactionId: interaction.id, reason: late.reason },
            'discord interaction acknowledged but not queued',
          );
      });
      return ack;
    }
    if (settled.ok) return ack;
    switch (settled.reason) {
      case 'duplicate':
        this.log.info(
          { interactionId: interaction.id },
          'discord interaction seen before (a replay); not forwarded again',
        );
        return ack;
      case 'no_route':
        return notice(DISCORD_NO_ROUTE_NOTICE);
      case 'unsupported':
        return notice(DISCORD_OLD_GATEWAY_NOTICE);
      case 'irrelevant':
        return notice(DISCORD_NOT_DELIVERED_NOTICE);
      default:
        this.log.warn(
          { interactionId: interaction.id, err: settled.message },
          'discord interaction not queued',
        );
        return notice(DISCORD_NOT_DELIVERED_NOTICE);
    }
  }

  /** Queue the interaction as a passthrough forward, its token bound in the vault first. */
  private forwardInteraction(
    context: PlatformContext,
    interaction: DiscordInteraction,
    body: Buffer,
  ): Promise<IngestOutcome> {
    const token = interaction.token;
    // The body as Discord sent it, less the token: the gateway decodes the same fields (§12).
    const raw = parseJsonBytes(body);
    const sanitised = raw.ok && isPlainObject(raw.value) ? { ...raw.value } : {};
    delete sanitised.token;
    const event = discordInteractionEvent(interaction);
    const deferredMessage = interaction.type !== DISCORD_INTERACTION.messageComponent;
    return context.ingest({
      routeKey: interaction.guild_id ?? event.source.chat_id ?? '',
      dedupeKey: `discord:${this.applicationId}:interaction-id:${interaction.id}`,
      event,
      addressed: true,
      passthrough: {
        platform: 'discord',
        botId: this.applicationId,
        method: 'POST',
        path: `/interactions/discord/${this.applicationId}`,
        headers: [['content-type', 'application/json']],
        bodyB64: Buffer.from(JSON.stringify(sanitised), 'utf8').toString('base64'),
      },
      beforeQueue: async ({ tenantId, sessionKey }) => {
        if (!token || !this.vault) return;
        await this.vault.bind(sessionKey, {
          tenantId,
          token,
          interactionId: interaction.id,
          originalPending: deferredMessage,
        });
      },
    });
  }

  /**
   * `follow_up` (current §7.2): the first one replaces the deferred "thinking…" reply, later ones
   * are new follow-up messages. The token never leaves the vault.
   */
  async followUp(tenantId: string, action: FollowUpAction): Promise<OutboundResult> {
    const vault = this.vault;
    const capability = await vault?.resolve(tenantId, action.session_key);
    if (!capability || !vault) return failedResult(`${NO_FOLLOW_UP} (absent or expired)`);
    const body = { content: action.content, allowed_mentions: { parse: ['users'] } };
    let sent: APIMessage;
    try {
      // Webhook routes carry the interaction token, never the bot's (auth: false).
      sent = (await (capability.originalPending
        ? this.rest.patch(Routes.webhookMessage(this.applicationId, capability.token, '@original'), {
            body,
            auth: false,
          })
        : this.rest.post(Routes.webhook(this.applicationId, capability.token), {
            body,
            auth: false,
          }))) as APIMessage;
    } catch (error) {
      return this.failure('follow_up', error, [capability.token], true, false);
    }
    // Sent: whatever happens to the bookkeeping, the answer is not sent again.
    if (capability.originalPending)
      await vault
        .markOriginalAnswered(action.session_key, capability.interactionId)
        .catch((error: unknown) =>
          this.log.warn(
            { err: this.describe(error) },
            'discord follow-up sent; its interaction not marked answered',
          ),
        );
    return { success: true, message_id: sent.id };
  }

  /**
   * Slash commands from a gateway's manifest: per guild where the tenant's routes are guilds,
   * for the whole application where it has the `*` route; written only when the manifest changed.
   */
  async registerCommands(declaration: CommandDeclaration): Promise<void> {
    // One registration at a time on this instance: a newer manifest always lands last.
    const run = this.registering.then(() => this.registerNow(declaration));
    this.registering = run.catch(() => undefined);
    return run;
  }

  private async registerNow(declaration: CommandDeclaration): Promise<void> {
    const commands = declaration.manifest.map((command) => ({ ...command, type: 1 }));
    const digest = createHash('sha256').update(JSON.stringify(commands)).digest('hex');
    const scopes = declaration.routeKeys.includes('*') ? ['global'] : declaration.routeKeys;
    for (const scope of scopes) {
      const key = `discord:${this.applicationId}:commands:${scope}`;
      if ((await this.context?.state?.get(key).catch(() => null)) === digest) continue;
      const route =
        scope === 'global'
          ? Routes.applicationCommands(this.applicationId)
          : Routes.applicationGuildCommands(this.applicationId, scope);
      try {
        await this.rest.put(route, { body: commands });
        await this.context?.state?.put(key, digest, COMMANDS_TTL_MS).catch(() => undefined);
        this.log.info(
          { scope, commands: commands.length, tenant: declaration.tenantId },
          'discord slash commands registered',
        );
      } catch (error) {
        // A DM channel's route key is not a guild (Unknown Guild): nothing to register there.
        if (error instanceof DiscordAPIError && error.code === 10004) {
          await this.context?.state?.put(key, digest, COMMANDS_TTL_MS).catch(() => undefined);
          continue;
        }
        this.log.warn({ scope, err: this.describe(error) }, 'discord slash commands not registered');
      }
    }
  }

  // --- ops -----------------------------------------------------------------------------------------

  async send(action: SendAction): Promise<OutboundResult> {
    return this.createMessage('send', await this.targetChannel(action.chat_id, action.metadata), {
      content: action.content,
      ...this.replyReference(action.reply_to),
    });
  }

  async edit(action: EditAction): Promise<OutboundResult> {
    try {
      await this.rest.patch(Routes.channelMessage(action.chat_id, action.message_id), {
        body: { content: action.content },
      });
      return { success: true, message_id: action.message_id };
    } catch (error) {
      return this.failure('edit', error);
    }
  }

  async typing(action: TypingAction): Promise<OutboundResult> {
    // Discord's indicator ends by itself (10 s) or with the next message: a clear has nothing to do.
    if (action.content === '') return { success: true };
    try {
      await this.rest.post(Routes.channelTyping(action.chat_id));
      return { success: true };
    } catch (error) {
      return this.failure('typing', error);
    }
  }

  async getChatInfo(action: GetChatInfoAction): Promise<OutboundResult> {
    try {
      const channel = (await this.rest.get(Routes.channel(action.chat_id))) as APIChannel & {
        name?: string | null;
      };
      this.rememberChannel(channel);
      const type =
        channel.type === 1
          ? 'dm'
          : DISCORD_THREAD_CHANNEL_TYPES.has(channel.type)
            ? 'thread'
            : channel.type === 15 || channel.type === 16
              ? 'forum'
              : 'group';
      return { success: true, chat_info: { name: channel.name || action.chat_id, type } };
    } catch (error) {
      return this.failure('get_chat_info', error);
    }
  }

  /** A re-host is uploaded as an attachment; a public https URL is posted as a link Discord previews. */
  async sendMedia(action: SendMediaAction): Promise<OutboundResult> {
    const channelId = await this.targetChannel(action.chat_id, action.metadata);
    const reference = this.replyReference(action.reply_to);
    const rehostId = mediaIdFromUrl(action.source_url);
    if (!rehostId) {
      const content = action.content ? `${action.content}\n${action.source_url}` : action.source_url;
      return this.createMessage('send_media', channelId, { content: fitDiscordText(content), ...reference });
    }
    const found = this.context?.openMedia?.(rehostId);
    if (!found) return failedResult('no such media (expired, or never uploaded by this tenant)');
    if (found.meta.size > MAX_UPLOAD_BYTES)
      return failedResult(
        `discord takes files up to ${MAX_UPLOAD_BYTES} bytes; this one has ${found.meta.size}`,
      );
    const chunks: Buffer[] = [];
    for await (const chunk of found.stream()) chunks.push(chunk as Buffer);
    const file: RawFile = {
      name:
        action.filename ||
        found.meta.filename ||
        `${action.media_kind}${extensionFor(found.meta.contentType)}`,
      data: Buffer.concat(chunks),
      contentType: found.meta.contentType,
    };
    return this.createMessage(
      'send_media',
      channelId,
      { content: fitDiscordText(action.content), ...reference },
      [file],
    );
  }

  /** Buttons whose `custom_id` is the callback token; a press comes back as an interaction. */
  async prompt(action: PromptAction): Promise<OutboundResult> {
    if (action.options.length > MAX_PROMPT_OPTIONS)
      return failedResult(
        `discord shows at most ${MAX_PROMPT_OPTIONS} buttons; got ${action.options.length} options`,
      );
    const buttons: unknown[] = [];
    for (const option of action.options) {
      const token = encodePromptToken(action.prompt_id, option.id);
      if (!token)
        return failedResult(
          `prompt_id and option ids must make a callback token of at most 64 bytes (hp1:<prompt_id>:<option_id>); option ${JSON.stringify(option.id)} does not`,
        );
      buttons.push({
        type: 2,
        style: BUTTON_STYLE[option.style ?? ''] ?? BUTTON_STYLE.secondary,
        label: option.label.slice(0, indexForBudget(option.label, 80, 'chars')) || option.id,
        custom_id: token,
      });
    }
    const rows = [];
    for (let i = 0; i < buttons.length; i += 5) rows.push({ type: 1, components: buttons.slice(i, i + 5) });
    return this.createMessage('prompt', await this.targetChannel(action.chat_id, action.metadata), {
      content: fitDiscordText(action.content),
      components: rows,
      ...this.replyReference(action.reply_to),
    });
  }

  async react(action: ReactAction): Promise<OutboundResult> {
    const route = Routes.channelMessageOwnReaction(
      action.chat_id,
      action.message_id,
      encodeURIComponent(action.emoji),
    );
    try {
      if (action.remove) await this.rest.delete(route);
      else await this.rest.put(route);
      return { success: true };
    } catch (error) {
      return this.failure('react', error);
    }
  }

  /** A public thread in the channel, or one on a message when `message_id` anchors it (current §7.6). */
  async createThread(action: ThreadCreateAction): Promise<OutboundResult> {
    const name = action.thread_name.slice(0, 100) || 'handoff';
    try {
      const thread = (await (action.message_id
        ? this.rest.post(Routes.threads(action.chat_id, action.message_id), { body: { name } })
        : this.rest.post(Routes.threads(action.chat_id), { body: { name, type: 11 } }))) as APIChannel;
      this.rememberChannel({ ...thread, parent_id: action.chat_id, name });
      await this.context?.state
        ?.put(`discord:${this.applicationId}:thread-name:${thread.id}`, name, THREAD_NAME_TTL_MS)
        .catch(() => undefined);
      return { success: true, thread_id: thread.id, message_id: thread.id };
    } catch (error) {
      return this.failure('thread_create', error, [], true);
    }
  }

  /** PATCH, after checking the no-clobber guard against the thread's current name. */
  async renameThread(action: ThreadRenameAction): Promise<OutboundResult> {
    const threadId = action.message_id;
    const name = action.thread_name.replace(/\s+/g, ' ').trim().slice(0, 100);
    if (!name) return failedResult('thread_name is empty');
    // The connector checked the chat is the tenant's; the thread must be one of its threads.
    if (threadId !== action.chat_id && !(await this.isThreadOf(action.chat_id, threadId)))
      return egressDeclined('discord');
    try {
      if (action.only_if_current_name !== undefined || action.only_if_connector_created === true) {
        const current =
          ((await this.rest.get(Routes.channel(threadId))) as { name?: string | null }).name ?? '';
        if (action.only_if_current_name !== undefined && current !== action.only_if_current_name)
          return failedResult('the thread was renamed since; not renamed');
        if (action.only_if_connector_created === true) {
          const created = await this.context?.state?.get(
            `discord:${this.applicationId}:thread-name:${threadId}`,
          );
          if (created !== current)
            return failedResult('the thread’s name is no longer the one the connector gave it; not renamed');
        }
      }
      await this.rest.patch(Routes.channel(threadId), { body: { name } });
      const stateKey = `discord:${this.applicationId}:thread-name:${threadId}`;
      if (await this.context?.state?.get(stateKey).catch(() => null))
        await this.context?.state?.put(stateKey, name, THREAD_NAME_TTL_MS).catch(() => undefined);
      return { success: true };
    } catch (error) {
      return this.failure('thread_rename', error);
    }
  }

  // --- outbound helpers ----------------------------------------------------------------------------

  private async createMessage(
    op: string,
    channelId: string,
    body: Record<string, unknown>,
    files?: RawFile[],
  ): Promise<OutboundResult> {
    try {
      const sent = (await this.rest.post(Routes.channelMessages(channelId), {
        // Agent text never pings @everyone or roles; users it names still are.
        body: { ...body, allowed_mentions: { parse: ['users'], replied_user: true } },
        ...(files ? { files } : {}),
      })) as APIMessage;
      return { success: true, message_id: sent.id };
    } catch (error) {
      return this.failure(op, error, [], true);
    }
  }

  /**
   * A thread named in metadata (a reply into it) wins over the chat, when it is a thread of that
   * chat: the connector checked only the chat is the tenant's, so any other channel is ignored.
   */
  private async targetChannel(
    chatId: string,
    metadata: Record<string, unknown> | undefined,
  ): Promise<string> {
    const raw = metadata?.thread_id;
    const thread = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
    if (!/^\d{5,25}$/.test(thread) || thread === chatId) return chatId;
    if (await this.isThreadOf(chatId, thread)) return thread;
    this.log.debug({ chatId }, 'discord metadata thread_id is not a thread of the chat; sent to the chat');
    return chatId;
  }

  /** True when `threadId` is a thread whose parent is `chatId` (from the cache, else Discord). */
  private async isThreadOf(chatId: string, threadId: string): Promise<boolean> {
    const facts = await this.channelFacts(threadId);
    return (
      facts?.type !== undefined && DISCORD_THREAD_CHANNEL_TYPES.has(facts.type) && facts.parentId === chatId
    );
  }

  private replyReference(replyTo: string | null | undefined): Record<string, unknown> {
    return replyTo && /^\d{5,25}$/.test(replyTo)
      ? { message_reference: { message_id: replyTo, fail_if_not_exists: false } }
      : {};
  }

  /**
   * A failed op as a result. Discord's own refusals (4xx) are final and never retried by the REST
   * client; a network failure after sending may have reached Discord (`ambiguous` for writes).
   */
  /** `botAuth`: the request carried the bot token, so a 401 means that token is refused. */
  private failure(
    op: string,
    error: unknown,
    secrets: string[] = [],
    write = false,
    botAuth = true,
  ): OutboundResult {
    const text = this.describe(error, secrets);
    if (botAuth && error instanceof DiscordAPIError && error.status === 401) {
      this.unauthorized = true;
      this.log.error({ op }, 'Discord rejected the bot token (401): check DISCORD_BOT_TOKEN');
    } else this.log.warn({ op, err: text }, 'discord outbound op failed');
    const ambiguous = write && !(error instanceof DiscordAPIError) && !neverSent(error);
    return failedResult(text, ambiguous ? { ambiguous: true } : {});
  }

  /** One line without the token or any interaction token (they appear in webhook URLs). */
  private describe(error: unknown, secrets: string[] = []): string {
    let text: string;
    if (error instanceof DiscordAPIError)
      text = `discord ${error.status} (code ${error.code}): ${error.message}`;
    else if (error instanceof HTTPError) text = `discord HTTP ${error.status}: ${error.message}`;
    else if (error instanceof Error) text = error.message;
    else text = String(error);
    return redact(text, [this.token, ...secrets]);
  }
}

/** At most Discord's 2,000 characters (code points, never half a surrogate pair). */
function fitDiscordText(text: string, limit = 2_000): string {
  return codePointLength(text) <= limit
    ? text
    : `${text.slice(0, indexForBudget(text, limit - 1, 'chars'))}…`;
}

function extensionFor(contentType: string): string {
  const sub = contentType.split('/')[1]?.split(';')[0]?.trim();
  return sub && /^[a-z0-9.+-]{1,10}$/i.test(sub) ? `.${sub.replace(/^x-/, '')}` : '';
}

/** Resolves true when `promise` settles within `ms`, false otherwise (the timer never holds the process). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A bot token's first part is the bot's user id in base64; undefined for any other token. */
export function botUserIdFromToken(token: string): string | undefined {
  const first = token.split('.', 1)[0] ?? '';
  const decoded = Buffer.from(first, 'base64').toString('utf8');
  return /^\d{15,25}$/.test(decoded) ? decoded : undefined;
}
