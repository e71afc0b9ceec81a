import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as signEd25519,
} from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type {
  APIAttachment,
  APIMessage,
  APIUser,
  GatewayMessageCreateDispatchData,
} from 'discord-api-types/v10';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { startFakeServer } from './fake-server.js';

/**
 * A local stand-in for Discord, on 127.0.0.1 at a random port: the REST API under `/api/v10`, the
 * Gateway at `/gateway`, attachment downloads at `/attachments/...`, and a signer for HTTP
 * interactions. It speaks the real protocols closely enough for the real `@discordjs/rest` 2.x and
 * `@discordjs/ws` 2.x (test/connector/fake-discord.test.ts drives it with both).
 *
 * Gateway (JSON, no compression): HELLO, HEARTBEAT/ACK, IDENTIFY → READY, RESUME → replay + RESUMED,
 * op 7 RECONNECT, op 9 INVALID_SESSION, close codes 4001/4002/4003/4004/4005/4007/4010/4012/4013/4014.
 * Sessions outlive their sockets: a dispatch to a session whose socket is down is kept in its log and
 * replayed by a later RESUME. A client closing with 1000 or 1001 ends its session (as on Discord);
 * any other close code, or a dropped socket, leaves it resumable. Like Discord, a session only gets
 * MESSAGE_CREATE for guilds with the GUILD_MESSAGES intent and for DMs with DIRECT_MESSAGES, and
 * without MESSAGE_CONTENT a guild message that does not mention the bot arrives with its content,
 * embeds, attachments and components emptied. Guild events go to shard `(guild_id >> 22) % count`,
 * DMs to shard 0. The bot's own REST writes are echoed to the sessions (MESSAGE_CREATE,
 * MESSAGE_UPDATE, MESSAGE_DELETE, THREAD_CREATE, ...) as Discord does; `echo: false` turns that off.
 *
 * REST: answers with Discord's JSON error shape `{message, code[, errors]}` and real rate-limit
 * headers on every response (a per-route bucket of `bucketLimit` requests per `bucketWindowMs`,
 * counted per top-level resource; reported, not enforced). Injected 429s (`rateLimit`) carry
 * `Retry-After` rounded up to whole seconds like Discord, with the float in the body and
 * `X-RateLimit-Reset-After`; a global one carries only `Retry-After`, `X-RateLimit-Global` and
 * `X-RateLimit-Scope: global`, as on Discord. Channels must be known (seeded with `addChannel`,
 * or seen in a dispatched message or interaction), else 404 Unknown Channel. A thread started from a
 * message takes the message's id, like on Discord. Interaction callbacks must come within
 * `interactionResponseWindowMs` (3 s, Discord's limit) and only once; the HTTP answer to
 * `postInteraction` counts as the callback when it is one.
 */

// --- public types --------------------------------------------------------------------------------

export interface FakeDiscordOptions {
  /** Bot token expected in `Authorization: Bot <token>` and in IDENTIFY/RESUME; default 'fake-discord-token'. */
  token?: string;
  /** Default '900000000000000001'. */
  applicationId?: string;
  /** Default = applicationId. */
  botUserId?: string;
  /** Sent in HELLO; default 41250 (tests may set e.g. 500). */
  heartbeatIntervalMs?: number;
  /** GET /gateway/bot `shards`; default 1. */
  shards?: number;
  /** Requests per rate-limit bucket window reported in the headers; default 5. */
  bucketLimit?: number;
  /** Length of a rate-limit bucket window; default 1000 ms. */
  bucketWindowMs?: number;
  /** How long after an interaction its initial callback is accepted; default 3000 ms (Discord's). */
  interactionResponseWindowMs?: number;
  /** Total upload size accepted per request; default 10 MiB (a bot's limit without boosts). */
  maxUploadBytes?: number;
  /** Intent bits the application is not allowed (an IDENTIFY asking for one is closed with 4014). */
  disallowedIntents?: number;
  /** Echo the bot's own REST writes to gateway sessions, as Discord does; default true. */
  echo?: boolean;
}

/** A file as a test hands it over (for `dispatchMessage` attachments). */
export interface FakeDiscordUpload {
  filename: string;
  bytes: Buffer;
  content_type?: string;
}

export interface FakeDiscordAttachment {
  id: string;
  filename: string;
  bytes: Buffer;
  content_type?: string;
  description?: string;
  size: number;
  /** Served by the fake (GET), like a cdn.discordapp.com attachment URL. */
  url: string;
}

/** A message as Discord holds it: what the bot sent (REST or interaction webhook) and what users sent. */
export interface FakeDiscordMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  author: APIUser;
  content: string;
  components?: unknown[];
  embeds?: unknown[];
  attachments: FakeDiscordAttachment[];
  message_reference?: { message_id?: string; channel_id?: string; guild_id?: string };
  flags: number;
  /** 0 default, 19 reply, 20 chat input command response, ... */
  type: number;
  timestamp: string;
  edited_timestamp: string | null;
  edited: boolean;
  /** Successful edits. */
  edits: number;
  /** The bot's own reactions, emoji as given (URL-decoded). */
  reactions: string[];
  webhook_id?: string;
  /** The thread started from this message, if any. */
  thread_id?: string;
  /** Messages dispatched by `dispatchMessage`: the message as dispatched. */
  raw?: GatewayMessageCreateDispatchData;
  /** How it came to be. */
  source: 'rest' | 'interaction' | 'gateway';
}

export interface FakeDiscordChannel {
  id: string;
  type: number;
  name?: string;
  guild_id?: string;
  parent_id?: string;
}

export interface FakeDiscordThread {
  id: string;
  parent_id: string;
  name: string;
  type: number;
  message_id?: string;
}

export interface FakeDiscordRequest {
  method: string;
  /**
   * Without the `/api/v10` prefix and the query, each segment percent-decoded as Discord reads it
   * (`Routes` from discord-api-types send `@me` as `%40me`; a reaction's emoji appears decoded).
   */
  path: string;
  /** The path as sent. */
  rawPath: string;
  /** The query string without `?` ('' when none). */
  query: string;
  /** Parsed JSON, or `payload_json` (plus plain form fields) of a multipart body; null when none. */
  body: unknown;
  /** Multipart file parts. */
  files?: { field: string; filename: string; content_type?: string; size: number }[];
  /** Lower-case names. */
  headers: Record<string, string>;
  /** The status answered; 0 while being handled. */
  status: number;
}

export interface FakeDiscordGatewayStats {
  /** IDENTIFYs answered with READY. */
  readonly identifies: number;
  /** RESUMEs answered with a replay and RESUMED. */
  readonly resumes: number;
  /** RESUMEs refused (op 9 d:false: unknown or ended session). */
  readonly failedResumes: number;
  /** Gateway sockets connected now (not counting dropped ones still closing). */
  readonly openSockets: number;
  readonly heartbeats: number;
  /** READY + RESUMED sent. */
  readonly readies: number;
  /** Sessions that can still be resumed or receive dispatches. */
  readonly sessions: number;
  /** The `d` of the last IDENTIFY received (accepted or not). */
  readonly lastIdentify?: unknown;
  /** Close codes clients closed their sockets with (close frames only, not drops). */
  readonly closeCodes: readonly number[];
  /** Every client payload except heartbeats, in order. */
  readonly received: readonly { op: number; d: unknown }[];
}

export interface FakeDiscordInteractionCallback {
  interactionId: string;
  token: string;
  body: unknown;
  /** 'http': the answer to the interaction POST; 'rest': POST /interactions/{id}/{token}/callback. */
  via: 'http' | 'rest';
}

export interface FakeDiscordFollowUp {
  token: string;
  body: unknown;
  messageId: string;
  edited?: boolean;
}

export interface FakeDiscordCommandScope {
  scope: 'global' | string;
  commands: unknown[];
  puts: number;
}

/** A user as a test names it: the rest (discriminator '0', global_name/avatar null) is filled in. */
export type FakeDiscordUserInput = Partial<APIUser> & { id: string };

export type FakeDiscordIncomingMessage = Omit<
  Partial<GatewayMessageCreateDispatchData>,
  'attachments' | 'channel_id' | 'author' | 'mentions'
> & {
  channel_id: string;
  guild_id?: string;
  /** Default {id:'700000000000000001', username:'alice', bot:false}. */
  author?: FakeDiscordUserInput;
  /** Default: derived from `<@id>` in the content, like Discord does. */
  mentions?: FakeDiscordUserInput[];
  /** API attachments, or files (served by the fake at the attachment's `url`). */
  attachments?: (APIAttachment | FakeDiscordUpload)[];
};

export interface FakeDiscordInteractionResult {
  status: number;
  /** Parsed JSON answer, or null (empty or not JSON). */
  body: unknown;
  text: string;
  interaction: Record<string, unknown> & { id: string; token: string };
  elapsedMs: number;
  /** Answered after `interactionResponseWindowMs`: Discord would have shown "This interaction failed". */
  timedOut: boolean;
}

export interface FakeDiscord {
  readonly token: string;
  readonly applicationId: string;
  readonly botUserId: string;
  readonly botUser: APIUser;
  /** http://127.0.0.1:PORT/api (the REST option `api`; REST appends /v10). */
  readonly apiRoot: string;
  /** ws://127.0.0.1:PORT/gateway (what GET /gateway/bot answers as `url`). */
  readonly gatewayUrl: string;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** The application's Ed25519 public key: 64 hex chars (raw 32 bytes), as the developer portal shows. */
  readonly publicKeyHex: string;
  /** Ed25519 signature (hex) over timestamp + body; timestamp defaults to now in unix seconds. */
  sign(body: string, timestamp?: string): { signature: string; timestamp: string };
  /** POST an interaction to `url`, signed like Discord (forge: a well-formed wrong signature). */
  postInteraction(
    url: string,
    interaction: Record<string, unknown>,
    options?: { forge?: boolean },
  ): Promise<FakeDiscordInteractionResult>;
  /** Send an interaction as INTERACTION_CREATE over the gateway (apps without an endpoint URL). */
  dispatchInteraction(
    interaction: Record<string, unknown>,
    options?: { shard?: number },
  ): Record<string, unknown> & { id: string; token: string };
  dispatchMessage(
    message: FakeDiscordIncomingMessage,
    options?: { shard?: number },
  ): GatewayMessageCreateDispatchData;
  /** Any dispatch with the next sequence number per session; returns how many sessions got it. */
  dispatch(t: string, d: unknown, options?: { shard?: number }): number;
  sendReconnect(): void;
  invalidateSession(resumable: boolean): void;
  dropConnections(): void;
  readonly gateway: FakeDiscordGatewayStats;
  waitForReady(count?: number): Promise<void>;
  /** Resolves once `count` requests whose "METHOD path" matches `route` have been answered. */
  waitForRequests(route: RegExp, count?: number): Promise<FakeDiscordRequest[]>;
  readonly requests: FakeDiscordRequest[];
  readonly messages: Map<string, FakeDiscordMessage>;
  readonly deletedMessages: string[];
  readonly channels: Map<string, FakeDiscordChannel>;
  addChannel(channel: FakeDiscordChannel): void;
  readonly typing: string[];
  readonly threads: FakeDiscordThread[];
  readonly interactionCallbacks: FakeDiscordInteractionCallback[];
  readonly followUps: FakeDiscordFollowUp[];
  readonly commands: FakeDiscordCommandScope[];
  /** Attachment downloads: path and status. */
  readonly downloads: { path: string; status: number }[];
  rateLimit(
    route: RegExp,
    options: {
      retryAfterSeconds: number;
      global?: boolean;
      count?: number;
      code?: number;
      scope?: 'user' | 'shared';
    },
  ): void;
  failNext(route: RegExp, status: number, error: { message: string; code: number }, count?: number): void;
  close(): Promise<void>;
}

// --- constants -----------------------------------------------------------------------------------

const API_PREFIX = '/api/v10';
const DISCORD_EPOCH = 1420070400000n;

/** Gateway intents (https://discord.com/developers/docs/events/gateway#list-of-intents). */
const INTENT = {
  guilds: 1 << 0,
  guildMessages: 1 << 9,
  guildMessageReactions: 1 << 10,
  guildMessageTyping: 1 << 11,
  directMessages: 1 << 12,
  directMessageReactions: 1 << 13,
  directMessageTyping: 1 << 14,
  messageContent: 1 << 15,
} as const;

const DM_CHANNEL_TYPES = new Set([1, 3]);
const THREAD_TYPES = new Set([10, 11, 12]);
const CALLBACK_TYPES = new Set([1, 4, 5, 6, 7, 8, 9, 10, 12]);
/** Loading ("thinking…") and ephemeral message flags. */
const FLAG_LOADING = 1 << 7;
const FLAG_EPHEMERAL = 1 << 6;

let lastSnowflake = 0n;

/** A Discord snowflake for now, strictly increasing within the process. */
export function nextSnowflake(): string {
  let next = (BigInt(Date.now()) - DISCORD_EPOCH) << 22n;
  if (next <= lastSnowflake) next = lastSnowflake + 1n;
  lastSnowflake = next;
  return next.toString();
}

// --- internal types ------------------------------------------------------------------------------

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Upload {
  field: string;
  filename: string;
  contentType?: string;
  bytes: Buffer;
}

interface Ctx {
  method: string;
  path: string;
  params: string[];
  query: URLSearchParams;
  body: unknown;
  uploads: Upload[];
}

interface Route {
  method: string;
  pattern: RegExp;
  /** Webhook and interaction-callback routes take no bot token (Discord ignores one if sent). */
  auth: boolean;
  handle: (ctx: Ctx) => Reply | Promise<Reply>;
}

interface Injection {
  route: RegExp;
  remaining: number;
  reply: (bucket: string) => Reply;
}

interface LogEntry {
  s: number;
  t: string;
  d: unknown;
  /** READY and RESUMED are never replayed. */
  replay: boolean;
}

interface Session {
  id: string;
  shard: [number, number];
  intents: number;
  seq: number;
  log: LogEntry[];
  conn?: Conn;
  valid: boolean;
}

interface Conn {
  ws: WebSocket;
  /** The upgraded TCP socket, to cut it without a close frame. */
  raw: Duplex;
  session?: Session;
  dropped: boolean;
  closedByServer: boolean;
  dropTimer?: NodeJS.Timeout;
}

interface InteractionRecord {
  id: string;
  token: string;
  type: number;
  channelId?: string;
  guildId?: string;
  messageId?: string;
  createdAt: number;
  acknowledged: boolean;
  originalId?: string;
  /** Messages created through this token (original and follow-ups). */
  messageIds: Set<string>;
}

type Json = Record<string, unknown>;

// --- helpers -------------------------------------------------------------------------------------

const ok = (body: unknown, status = 200): Reply => ({ status, body });
const noContent = (): Reply => ({ status: 204 });
const apiError = (status: number, message: string, code: number, errors?: unknown): Reply => ({
  status,
  body: { message, code, ...(errors !== undefined ? { errors } : {}) },
});
const unknownChannel = () => apiError(404, 'Unknown Channel', 10003);
const unknownMessage = () => apiError(404, 'Unknown Message', 10008);
const unknownWebhook = () => apiError(404, 'Unknown Webhook', 10015);
const unknownInteraction = () => apiError(404, 'Unknown interaction', 10062);

/** `{a: {0: {b: {_errors: [{code, message}]}}}}` for the path a.0.b, as Discord nests form errors. */
function fieldError(path: (string | number)[], code: string, message: string): Reply {
  let errors: Json = { _errors: [{ code, message }] };
  for (let i = path.length - 1; i >= 0; i--) errors = { [String(path[i])]: errors };
  return apiError(400, 'Invalid Form Body', 50035, errors);
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asRecord(value: unknown): Json {
  return isRecord(value) ? value : {};
}

function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function isUpload(value: unknown): value is FakeDiscordUpload {
  return isRecord(value) && Buffer.isBuffer(value.bytes) && typeof value.filename === 'string';
}

/** Discord reads percent-encoded path segments decoded (a segment that would hold a `/` stays as is). */
function decodeSegment(segment: string): string {
  try {
    const decoded = decodeURIComponent(segment);
    return decoded.includes('/') ? segment : decoded;
  } catch {
    return segment;
  }
}

function fullUser(user: FakeDiscordUserInput): APIUser {
  return { username: `user-${user.id}`, discriminator: '0', global_name: null, avatar: null, ...user };
}

function flatHeaders(headers: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** A unicode emoji, or a custom one as `name:id` / `a:name:id` (how reaction routes name them). */
function validEmoji(emoji: string): boolean {
  if (/^(?:a:)?[\w~-]{1,32}:\d{17,20}$/.test(emoji)) return true;
  return /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u.test(emoji) && emoji.length <= 32;
}

function apiEmoji(emoji: string): { id: string | null; name: string; animated?: boolean } {
  const custom = /^(a:)?([^:]+):(\d+)$/.exec(emoji);
  if (custom)
    return { id: custom[3] ?? null, name: custom[2] ?? '', ...(custom[1] ? { animated: true } : {}) };
  return { id: null, name: emoji };
}

/** The first component with an over-long custom_id, as the path Discord reports it under. */
function longCustomId(components: unknown, path: (string | number)[]): (string | number)[] | undefined {
  if (!Array.isArray(components)) return undefined;
  for (const [index, component] of components.entries()) {
    if (!isRecord(component)) continue;
    const here = [...path, index];
    if (typeof component.custom_id === 'string' && component.custom_id.length > 100)
      return [...here, 'custom_id'];
    const inner = longCustomId(component.components, [...here, 'components']);
    if (inner) return inner;
  }
  return undefined;
}

/** Route template and bucket key parts, the way Discord groups rate limits. */
function bucketOf(method: string, path: string): { template: string; major: string } {
  const template = path
    .replace(/\/reactions\/.*/, '/reactions/:reaction')
    .replace(/^\/webhooks\/(\d+)\/[^/]+/, '/webhooks/$1/:token')
    .replace(/^\/interactions\/(\d+)\/[^/]+/, '/interactions/$1/:token')
    .replace(/\d{16,21}/g, ':id');
  const webhook = /^\/webhooks\/(\d+\/[^/]+)/.exec(path);
  const resource = /^\/(?:channels|guilds)\/(\d+)/.exec(path);
  const major = webhook?.[1] ?? resource?.[1] ?? 'global';
  return { template: `${method} ${template}`, major };
}

// --- the fake ------------------------------------------------------------------------------------

class FakeDiscordServer implements FakeDiscord {
  readonly token: string;
  readonly applicationId: string;
  readonly botUserId: string;
  readonly botUser: APIUser;
  readonly apiRoot: string;
  readonly gatewayUrl: string;
  readonly origin: string;
  readonly publicKeyHex: string;

  readonly requests: FakeDiscordRequest[] = [];
  readonly messages = new Map<string, FakeDiscordMessage>();
  readonly deletedMessages: string[] = [];
  readonly channels = new Map<string, FakeDiscordChannel>();
  readonly typing: string[] = [];
  readonly threads: FakeDiscordThread[] = [];
  readonly interactionCallbacks: FakeDiscordInteractionCallback[] = [];
  readonly followUps: FakeDiscordFollowUp[] = [];
  readonly commands: FakeDiscordCommandScope[] = [];
  readonly downloads: { path: string; status: number }[] = [];
  readonly gateway: FakeDiscordGatewayStats;

  private readonly stats = {
    identifies: 0,
    resumes: 0,
    failedResumes: 0,
    heartbeats: 0,
    readies: 0,
    lastIdentify: undefined as unknown,
    closeCodes: [] as number[],
    received: [] as { op: number; d: unknown }[],
  };
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly privateKey: KeyObject;
  private readonly forgeryKey: KeyObject;
  private readonly heartbeatIntervalMs: number;
  private readonly shardCount: number;
  private readonly bucketLimit: number;
  private readonly bucketWindowMs: number;
  private readonly responseWindowMs: number;
  private readonly maxUploadBytes: number;
  private readonly disallowedIntents: number;
  private readonly echo: boolean;
  private readonly conns = new Set<Conn>();
  private readonly sessions = new Map<string, Session>();
  private readonly interactions = new Map<string, InteractionRecord>();
  private readonly interactionsByToken = new Map<string, InteractionRecord>();
  private readonly injections: Injection[] = [];
  private readonly buckets = new Map<string, { start: number; count: number }>();
  private readonly readyWaiters: { count: number; resolve: () => void }[] = [];
  private readonly requestWaiters: { check: () => boolean; resolve: () => void }[] = [];
  private readonly routes: Route[];
  private closed = false;

  constructor(server: Server, port: number, options: FakeDiscordOptions) {
    this.server = server;
    this.token = options.token ?? 'fake-discord-token';
    this.applicationId = options.applicationId ?? '900000000000000001';
    this.botUserId = options.botUserId ?? this.applicationId;
    this.botUser = {
      id: this.botUserId,
      username: 'hermes-bot',
      discriminator: '0',
      global_name: null,
      avatar: null,
      bot: true,
    };
    this.origin = `http://127.0.0.1:${port}`;
    this.apiRoot = `${this.origin}/api`;
    this.gatewayUrl = `ws://127.0.0.1:${port}/gateway`;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 41_250;
    this.shardCount = options.shards ?? 1;
    this.bucketLimit = options.bucketLimit ?? 5;
    this.bucketWindowMs = options.bucketWindowMs ?? 1000;
    this.responseWindowMs = options.interactionResponseWindowMs ?? 3000;
    this.maxUploadBytes = options.maxUploadBytes ?? 10 * 1024 * 1024;
    this.disallowedIntents = options.disallowedIntents ?? 0;
    this.echo = options.echo ?? true;

    const keys = generateKeyPairSync('ed25519');
    this.privateKey = keys.privateKey;
    this.forgeryKey = generateKeyPairSync('ed25519').privateKey;
    const jwk = keys.publicKey.export({ format: 'jwk' });
    this.publicKeyHex = Buffer.from(String(jwk.x), 'base64url').toString('hex');

    const stats = this.stats;
    const conns = this.conns;
    const sessions = this.sessions;
    this.gateway = {
      get identifies() {
        return stats.identifies;
      },
      get resumes() {
        return stats.resumes;
      },
      get failedResumes() {
        return stats.failedResumes;
      },
      get heartbeats() {
        return stats.heartbeats;
      },
      get readies() {
        return stats.readies;
      },
      get lastIdentify() {
        return stats.lastIdentify;
      },
      get closeCodes() {
        return stats.closeCodes;
      },
      get received() {
        return stats.received;
      },
      get openSockets() {
        return [...conns].filter((conn) => !conn.dropped).length;
      },
      get sessions() {
        return [...sessions.values()].filter((session) => session.valid).length;
      },
    };

    this.wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = new URL(req.url ?? '/', this.origin).pathname;
      if (this.closed || path !== '/gateway') {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req, socket));
    });

    this.routes = this.buildRoutes();
  }

  // --- test API ----------------------------------------------------------------------------------

  addChannel(channel: FakeDiscordChannel): void {
    this.channels.set(channel.id, { ...this.channels.get(channel.id), ...channel });
  }

  sign(
    body: string,
    timestamp = String(Math.floor(Date.now() / 1000)),
  ): { signature: string; timestamp: string } {
    const signature = signEd25519(null, Buffer.from(timestamp + body, 'utf8'), this.privateKey).toString(
      'hex',
    );
    return { signature, timestamp };
  }

  async postInteraction(
    url: string,
    interaction: Record<string, unknown>,
    options: { forge?: boolean } = {},
  ): Promise<FakeDiscordInteractionResult> {
    const forged = options.forge === true;
    const filled = this.fillInteraction(interaction, !forged);
    const body = JSON.stringify(filled);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = forged
      ? signEd25519(null, Buffer.from(timestamp + body, 'utf8'), this.forgeryKey).toString('hex')
      : this.sign(body, timestamp).signature;
    const started = performance.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Discord-Interactions/1.0 (+https://discord.com)',
        'x-signature-ed25519': signature,
        'x-signature-timestamp': timestamp,
      },
      body,
    });
    const type = res.headers.get('content-type') ?? '';
    let text = '';
    let parsed: unknown = null;
    let uploads: Upload[] = [];
    if (type.includes('multipart/form-data')) {
      const form = await this.parseBody(type, Buffer.from(await res.arrayBuffer()));
      if (!('status' in form)) {
        parsed = form.body;
        uploads = form.uploads;
        text = JSON.stringify(parsed);
      }
    } else {
      text = await res.text();
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
    }
    const elapsedMs = performance.now() - started;
    const timedOut = elapsedMs > this.responseWindowMs;
    const record = this.interactions.get(filled.id);
    // The answer to the POST is the interaction's initial response (PONG excepted), if in time.
    if (!forged && !timedOut && record && res.status === 200 && record.type !== 1 && isRecord(parsed)) {
      if (typeof parsed.type === 'number' && !record.acknowledged)
        this.applyCallback(record, parsed, uploads, 'http');
    }
    return { status: res.status, body: parsed, text, interaction: filled, elapsedMs, timedOut };
  }

  dispatchInteraction(
    interaction: Record<string, unknown>,
    options: { shard?: number } = {},
  ): Record<string, unknown> & { id: string; token: string } {
    const filled = this.fillInteraction(interaction, true);
    const guildId = str(filled.guild_id);
    const targets = this.targetSessions(guildId, options.shard);
    if (this.validSessions().length === 0)
      throw new Error(
        'fake Discord: no gateway session to send INTERACTION_CREATE to (await waitForReady())',
      );
    for (const session of targets) this.push(session, 'INTERACTION_CREATE', filled);
    return filled;
  }

  dispatchMessage(
    input: FakeDiscordIncomingMessage,
    options: { shard?: number } = {},
  ): GatewayMessageCreateDispatchData {
    if (this.validSessions().length === 0)
      throw new Error(
        'fake Discord: dispatchMessage with no gateway session: no bot has identified yet (await waitForReady())',
      );
    const id = input.id ?? nextSnowflake();
    const channelId = input.channel_id;
    const known = this.channels.get(channelId);
    const guildId = input.guild_id ?? known?.guild_id;
    if (!known)
      this.addChannel({ id: channelId, type: guildId ? 0 : 1, ...(guildId ? { guild_id: guildId } : {}) });
    const content = input.content ?? '';
    const attachments: APIAttachment[] = [];
    const stored: FakeDiscordAttachment[] = [];
    for (const attachment of input.attachments ?? []) {
      if (isUpload(attachment)) {
        const file = this.attachmentFrom(channelId, {
          filename: attachment.filename,
          bytes: attachment.bytes,
          ...(attachment.content_type ? { content_type: attachment.content_type } : {}),
        });
        stored.push(file);
        attachments.push(this.apiAttachment(file));
      } else {
        attachments.push(attachment);
        stored.push({
          id: attachment.id,
          filename: attachment.filename,
          bytes: Buffer.alloc(0),
          size: attachment.size,
          url: attachment.url,
          ...(attachment.content_type ? { content_type: attachment.content_type } : {}),
        });
      }
    }
    const mentions = input.mentions
      ? input.mentions.map(fullUser)
      : [...content.matchAll(/<@!?(\d{5,25})>/g)].map((match) =>
          match[1] === this.botUserId ? this.botUser : fullUser({ id: match[1] ?? '' }),
        );
    const reference = input.message_reference;
    const referenced =
      reference?.message_id && input.referenced_message === undefined
        ? this.messages.get(reference.message_id)
        : undefined;
    const message: GatewayMessageCreateDispatchData = {
      type: reference ? 19 : 0,
      tts: false,
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      pinned: false,
      mention_everyone: false,
      mention_roles: [],
      embeds: [],
      components: [],
      flags: 0,
      ...input,
      id,
      channel_id: channelId,
      author: fullUser(input.author ?? { id: '700000000000000001', username: 'alice', bot: false }),
      content,
      attachments,
      mentions,
      ...(guildId ? { guild_id: guildId } : {}),
      ...(guildId && !input.member
        ? { member: { roles: [], joined_at: new Date(0).toISOString(), deaf: false, mute: false, flags: 0 } }
        : {}),
      ...(referenced ? { referenced_message: this.toApiMessage(referenced) } : {}),
    } as GatewayMessageCreateDispatchData;
    this.messages.set(id, {
      id,
      channel_id: channelId,
      ...(guildId ? { guild_id: guildId } : {}),
      author: message.author,
      content,
      ...(message.components ? { components: message.components } : {}),
      embeds: message.embeds,
      attachments: stored,
      ...(reference ? { message_reference: reference } : {}),
      flags: Number(message.flags ?? 0),
      type: message.type,
      timestamp: message.timestamp,
      edited_timestamp: null,
      edited: false,
      edits: 0,
      reactions: [],
      raw: message,
      source: 'gateway',
    });
    this.dispatchMessageEvent('MESSAGE_CREATE', message, guildId, options.shard);
    return message;
  }

  dispatch(t: string, d: unknown, options: { shard?: number } = {}): number {
    const targets = this.validSessions().filter(
      (session) => options.shard === undefined || session.shard[0] === options.shard,
    );
    for (const session of targets) this.push(session, t, d);
    return targets.length;
  }

  sendReconnect(): void {
    for (const conn of this.conns) {
      if (conn.dropped) continue;
      // Discord stops dispatching to a socket it told to reconnect; the session keeps the events.
      this.detach(conn);
      this.sendOp(conn, 7, null);
    }
  }

  invalidateSession(resumable: boolean): void {
    if (!resumable) for (const session of this.sessions.values()) session.valid = false;
    for (const conn of this.conns) {
      if (conn.dropped || !conn.session) continue;
      this.detach(conn);
      this.sendOp(conn, 9, resumable);
    }
  }

  dropConnections(): void {
    for (const conn of this.conns) {
      if (conn.dropped) continue;
      // Detached at once, so what is dispatched from now on is kept for a RESUME.
      this.detach(conn);
      conn.dropped = true;
      // A FIN without a close frame (the client sees 1006, as after a network cut), then gone.
      conn.raw.end();
      conn.dropTimer = setTimeout(() => conn.raw.destroy(), 1000);
      conn.dropTimer.unref();
    }
  }

  waitForReady(count = 1): Promise<void> {
    if (this.stats.readies >= count) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push({ count, resolve }));
  }

  waitForRequests(route: RegExp, count = 1): Promise<FakeDiscordRequest[]> {
    const matching = () =>
      this.requests.filter(
        (request) => request.status !== 0 && route.test(`${request.method} ${request.path}`),
      );
    return new Promise((resolve) => {
      const check = () => matching().length >= count;
      if (check()) resolve(matching());
      else this.requestWaiters.push({ check, resolve: () => resolve(matching()) });
    });
  }

  rateLimit(
    route: RegExp,
    options: {
      retryAfterSeconds: number;
      global?: boolean;
      count?: number;
      code?: number;
      scope?: 'user' | 'shared';
    },
  ): void {
    const retryAfter = options.retryAfterSeconds;
    const global = options.global === true;
    this.injections.push({
      route,
      remaining: options.count ?? 1,
      reply: (bucket): Reply => {
        const body = {
          message: 'You are being rate limited.',
          retry_after: retryAfter,
          global,
          ...(options.code !== undefined ? { code: options.code } : {}),
        };
        // Discord's Retry-After header is whole seconds (rounded up); the body has the float.
        const retryHeader = String(Math.ceil(retryAfter));
        if (global) {
          return {
            status: 429,
            body,
            headers: {
              'Retry-After': retryHeader,
              'X-RateLimit-Global': 'true',
              'X-RateLimit-Scope': 'global',
            },
          };
        }
        const now = Date.now();
        return {
          status: 429,
          body,
          headers: {
            'Retry-After': retryHeader,
            'X-RateLimit-Limit': String(this.bucketLimit),
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': ((now + retryAfter * 1000) / 1000).toFixed(3),
            'X-RateLimit-Reset-After': retryAfter.toFixed(3),
            'X-RateLimit-Bucket': bucket,
            'X-RateLimit-Scope': options.scope ?? 'user',
          },
        };
      },
    });
  }

  failNext(route: RegExp, status: number, error: { message: string; code: number }, count = 1): void {
    this.injections.push({
      route,
      remaining: count,
      reply: () => apiError(status, error.message, error.code),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const conn of this.conns) {
      if (conn.dropTimer) clearTimeout(conn.dropTimer);
      conn.ws.terminate();
    }
    this.conns.clear();
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await closing;
  }

  // --- gateway -----------------------------------------------------------------------------------

  private onConnection(ws: WebSocket, req: IncomingMessage, raw: Duplex): void {
    const conn: Conn = { ws, raw, dropped: false, closedByServer: false };
    this.conns.add(conn);
    ws.on('message', (data: RawData, isBinary: boolean) => this.onGatewayMessage(conn, data, isBinary));
    ws.on('close', (code: number) => this.onGatewayClose(conn, code));
    ws.on('error', () => undefined);
    const query = new URL(req.url ?? '/', this.origin).searchParams;
    const version = query.get('v');
    if (version !== null && version !== '10') {
      this.closeConn(conn, 4012, 'Invalid API version.');
      return;
    }
    const encoding = query.get('encoding') ?? 'json';
    if (encoding !== 'json') {
      this.closeConn(conn, 4002, 'Error while decoding payload (the fake speaks JSON only).');
      return;
    }
    this.sendOp(conn, 10, {
      heartbeat_interval: this.heartbeatIntervalMs,
      _trace: ['["fake-discord-gateway",{}]'],
    });
  }

  private onGatewayMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    if (conn.dropped || this.closed) return;
    let payload: unknown;
    try {
      if (isBinary) throw new Error('binary (ETF or compressed) payloads are not spoken here');
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      payload = JSON.parse(text);
    } catch {
      this.closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    const { op, d } = asRecord(payload);
    if (typeof op !== 'number') {
      this.closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    if (op !== 1) this.stats.received.push({ op, d });
    switch (op) {
      case 1:
        this.stats.heartbeats += 1;
        this.sendOp(conn, 11, null);
        return;
      case 2:
        this.identify(conn, asRecord(d));
        return;
      case 6:
        this.resume(conn, asRecord(d));
        return;
      case 3:
      case 4:
      case 8:
      case 31:
        // Presence update, voice state, request guild members, request soundboard sounds.
        if (!conn.session) this.closeConn(conn, 4003, 'Not authenticated.');
        return;
      default:
        this.closeConn(conn, 4001, 'Unknown opcode.');
    }
  }

  private identify(conn: Conn, d: Json): void {
    this.stats.lastIdentify = d;
    if (conn.session) {
      this.closeConn(conn, 4005, 'Already authenticated.');
      return;
    }
    if (d.token !== this.token) {
      this.closeConn(conn, 4004, 'Authentication failed.');
      return;
    }
    if (typeof d.intents !== 'number' || !Number.isInteger(d.intents) || d.intents < 0) {
      this.closeConn(conn, 4013, 'Invalid intent(s).');
      return;
    }
    if (d.intents & this.disallowedIntents) {
      this.closeConn(conn, 4014, 'Disallowed intent(s).');
      return;
    }
    const shard = d.shard === undefined ? [0, 1] : d.shard;
    if (
      !Array.isArray(shard) ||
      shard.length !== 2 ||
      !shard.every((n) => Number.isInteger(n)) ||
      shard[1] < 1 ||
      shard[0] < 0 ||
      shard[0] >= shard[1]
    ) {
      this.closeConn(conn, 4010, 'Invalid shard.');
      return;
    }
    const session: Session = {
      id: randomBytes(16).toString('hex'),
      shard: [shard[0] as number, shard[1] as number],
      intents: d.intents,
      seq: 0,
      log: [],
      valid: true,
    };
    this.sessions.set(session.id, session);
    conn.session = session;
    session.conn = conn;
    this.stats.identifies += 1;
    this.push(
      session,
      'READY',
      {
        v: 10,
        user_settings: {},
        user: { ...this.botUser, flags: 0, verified: true, mfa_enabled: false },
        guilds: [],
        session_id: session.id,
        session_type: 'normal',
        resume_gateway_url: this.gatewayUrl,
        shard: session.shard,
        application: { id: this.applicationId, flags: 0 },
        private_channels: [],
        presences: [],
        relationships: [],
        guild_join_requests: [],
        geo_ordered_rtc_regions: [],
        _trace: ['["fake-discord-gateway",{}]'],
      },
      false,
    );
    this.readied();
  }

  private resume(conn: Conn, d: Json): void {
    if (conn.session) {
      this.closeConn(conn, 4005, 'Already authenticated.');
      return;
    }
    if (d.token !== this.token) {
      this.closeConn(conn, 4004, 'Authentication failed.');
      return;
    }
    const session = typeof d.session_id === 'string' ? this.sessions.get(d.session_id) : undefined;
    if (!session?.valid) {
      this.stats.failedResumes += 1;
      this.sendOp(conn, 9, false);
      return;
    }
    const seq = typeof d.seq === 'number' ? d.seq : 0;
    if (seq > session.seq) {
      this.closeConn(conn, 4007, 'Invalid seq.');
      return;
    }
    const previous = session.conn;
    if (previous && previous !== conn) {
      // One socket per session: the older one is let go (it will identify anew).
      this.detach(previous);
      this.closeConn(previous, 1000, 'Session resumed on another connection.');
    }
    conn.session = session;
    session.conn = conn;
    for (const entry of session.log) {
      if (entry.replay && entry.s > seq) this.sendRaw(conn, { op: 0, t: entry.t, s: entry.s, d: entry.d });
    }
    this.stats.resumes += 1;
    this.push(session, 'RESUMED', { _trace: ['["fake-discord-gateway",{}]'] }, false);
    this.readied();
  }

  private onGatewayClose(conn: Conn, code: number): void {
    this.conns.delete(conn);
    if (conn.dropTimer) clearTimeout(conn.dropTimer);
    const byClient = !conn.dropped && !conn.closedByServer && code !== 1005 && code !== 1006;
    if (byClient) this.stats.closeCodes.push(code);
    const session = conn.session;
    this.detach(conn);
    // Like Discord: a client closing with 1000/1001 ends its session; anything else can be resumed.
    if (session && byClient && (code === 1000 || code === 1001)) session.valid = false;
  }

  private detach(conn: Conn): void {
    const session = conn.session;
    if (!session) return;
    conn.session = undefined;
    if (session.conn === conn) session.conn = undefined;
  }

  private closeConn(conn: Conn, code: number, reason: string): void {
    conn.closedByServer = true;
    this.detach(conn);
    conn.ws.close(code, reason);
  }

  private sendOp(conn: Conn, op: number, d: unknown): void {
    this.sendRaw(conn, { op, d, s: null, t: null });
  }

  private sendRaw(conn: Conn, payload: unknown): void {
    if (conn.dropped || conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(JSON.stringify(payload));
  }

  /** Append to the session's log and send it if the session has a socket. */
  private push(session: Session, t: string, d: unknown, replay = true): void {
    session.seq += 1;
    const entry: LogEntry = { s: session.seq, t, d, replay };
    session.log.push(entry);
    if (session.conn) this.sendRaw(session.conn, { op: 0, t, s: entry.s, d });
  }

  private readied(): void {
    this.stats.readies += 1;
    for (let i = this.readyWaiters.length - 1; i >= 0; i--) {
      const waiter = this.readyWaiters[i];
      if (waiter && this.stats.readies >= waiter.count) {
        this.readyWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  private validSessions(): Session[] {
    return [...this.sessions.values()].filter((session) => session.valid);
  }

  /** Guild events go to shard (guild_id >> 22) % count, DMs to shard 0, unless a shard is named. */
  private targetSessions(guildId: string | undefined, shard: number | undefined): Session[] {
    return this.validSessions().filter((session) => {
      if (shard !== undefined) return session.shard[0] === shard;
      if (!guildId || !/^\d+$/.test(guildId)) return session.shard[0] === 0;
      return Number((BigInt(guildId) >> 22n) % BigInt(session.shard[1])) === session.shard[0];
    });
  }

  /** MESSAGE_CREATE/UPDATE with Discord's intent rules (and content stripped without MESSAGE_CONTENT). */
  private dispatchMessageEvent(
    t: string,
    message: object,
    guildId: string | undefined,
    shard?: number,
  ): void {
    const needed = guildId ? INTENT.guildMessages : INTENT.directMessages;
    const { mentions, author } = message as Json;
    const mentionsBot =
      Array.isArray(mentions) && mentions.some((user) => isRecord(user) && user.id === this.botUserId);
    const privileged = !guildId || mentionsBot || asRecord(author).id === this.botUserId;
    for (const session of this.targetSessions(guildId, shard)) {
      if (!(session.intents & needed)) continue;
      const d =
        privileged || session.intents & INTENT.messageContent
          ? message
          : { ...message, content: '', embeds: [], attachments: [], components: [] };
      this.push(session, t, d);
    }
  }

  /** Other echoes (threads, reactions, typing, deletes), gated by their intent. */
  private echoEvent(
    t: string,
    d: unknown,
    guildId: string | undefined,
    intent: { guild: number; dm: number },
  ) {
    if (!this.echo) return;
    const needed = guildId ? intent.guild : intent.dm;
    for (const session of this.targetSessions(guildId, undefined)) {
      if (needed && !(session.intents & needed)) continue;
      this.push(session, t, d);
    }
  }

  private echoMessage(t: 'MESSAGE_CREATE' | 'MESSAGE_UPDATE', message: FakeDiscordMessage): void {
    if (!this.echo || message.flags & FLAG_EPHEMERAL) return;
    const data = {
      ...this.toApiMessage(message),
      ...(message.guild_id ? { guild_id: message.guild_id } : {}),
    };
    this.dispatchMessageEvent(t, data, message.guild_id);
  }

  // --- interactions ------------------------------------------------------------------------------

  private fillInteraction(
    interaction: Record<string, unknown>,
    register: boolean,
  ): Record<string, unknown> & { id: string; token: string } {
    const filled: Record<string, unknown> & { id: string; token: string } = {
      ...interaction,
      id: str(interaction.id) ?? nextSnowflake(),
      application_id: str(interaction.application_id) ?? this.applicationId,
      token: str(interaction.token) ?? `aW50ZXJhY3Rpb246${randomBytes(60).toString('base64url')}`,
      version: interaction.version ?? 1,
    };
    if (!register) return filled;
    const channelId = str(filled.channel_id) ?? str(asRecord(filled.channel).id);
    const guildId = str(filled.guild_id);
    if (channelId && !this.channels.has(channelId))
      this.addChannel({ id: channelId, type: guildId ? 0 : 1, ...(guildId ? { guild_id: guildId } : {}) });
    const message = asRecord(filled.message);
    const messageId = str(message.id);
    // A press carries the whole message its button is on, as Discord sends it.
    const pressed = messageId ? this.messages.get(messageId) : undefined;
    if (pressed) filled.message = { ...this.toApiMessage(pressed), ...message };
    const record: InteractionRecord = {
      id: filled.id,
      token: filled.token,
      type: typeof filled.type === 'number' ? filled.type : 0,
      ...(channelId ? { channelId } : {}),
      ...(guildId ? { guildId } : {}),
      ...(messageId ? { messageId } : {}),
      createdAt: Date.now(),
      acknowledged: false,
      messageIds: new Set(),
    };
    this.interactions.set(record.id, record);
    this.interactionsByToken.set(record.token, record);
    return filled;
  }

  /** The interaction's initial response, whether answered over HTTP or through the callback route. */
  private applyCallback(
    interaction: InteractionRecord,
    body: Json,
    uploads: Upload[],
    via: 'http' | 'rest',
  ): Reply | undefined {
    const type = body.type;
    if (typeof type !== 'number' || !CALLBACK_TYPES.has(type))
      return fieldError(
        ['type'],
        'BASE_TYPE_CHOICES',
        `Value must be one of {${[...CALLBACK_TYPES].join(', ')}}.`,
      );
    const data = asRecord(body.data);
    const channelId = interaction.channelId ?? 'unknown';
    if (type === 4 || type === 5) {
      const created = this.createMessage(
        channelId,
        type === 5 ? { content: '', flags: FLAG_LOADING | (Number(data.flags ?? 0) & FLAG_EPHEMERAL) } : data,
        type === 5 ? [] : uploads,
        { source: 'interaction', messageType: 20, allowEmpty: type === 5 },
      );
      if ('status' in created) return created;
      interaction.originalId = created.id;
      interaction.messageIds.add(created.id);
    } else if (type === 7 || type === 6) {
      const target = interaction.messageId ? this.messages.get(interaction.messageId) : undefined;
      if (type === 7 && target) {
        const edited = this.editMessage(target, data, uploads);
        if ('status' in edited) return edited;
      }
      if (interaction.messageId) {
        interaction.originalId = interaction.messageId;
        interaction.messageIds.add(interaction.messageId);
      }
    }
    interaction.acknowledged = true;
    this.interactionCallbacks.push({ interactionId: interaction.id, token: interaction.token, body, via });
    return undefined;
  }

  // --- HTTP --------------------------------------------------------------------------------------

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    if (url.pathname.startsWith('/attachments/') && req.method === 'GET') {
      this.serveAttachment(url.pathname, res);
      return;
    }
    if (!url.pathname.startsWith(`${API_PREFIX}/`)) {
      this.respond(res, apiError(404, '404: Not Found', 0));
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const rawPath = url.pathname.slice(API_PREFIX.length);
    const path = rawPath.split('/').map(decodeSegment).join('/');
    const record: FakeDiscordRequest = {
      method,
      path,
      rawPath,
      query: url.search.replace(/^\?/, ''),
      body: null,
      headers: flatHeaders(req.headers),
      status: 0,
    };
    this.requests.push(record);
    let reply: Reply;
    try {
      reply = await this.route(method, path, url.searchParams, req, raw, record);
    } catch (error) {
      reply = apiError(
        500,
        `fake Discord failed: ${error instanceof Error ? error.message : String(error)}`,
        0,
      );
    }
    record.status = reply.status;
    this.respond(res, reply);
    for (let i = this.requestWaiters.length - 1; i >= 0; i--) {
      const waiter = this.requestWaiters[i];
      if (waiter?.check()) {
        this.requestWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  private async route(
    method: string,
    path: string,
    query: URLSearchParams,
    req: IncomingMessage,
    raw: Buffer,
    record: FakeDiscordRequest,
  ): Promise<Reply> {
    const parsed = await this.parseBody(String(req.headers['content-type'] ?? ''), raw);
    if ('status' in parsed) return parsed;
    record.body = parsed.body;
    if (parsed.uploads.length > 0)
      record.files = parsed.uploads.map((upload) => ({
        field: upload.field,
        filename: upload.filename,
        ...(upload.contentType ? { content_type: upload.contentType } : {}),
        size: upload.bytes.length,
      }));
    let params: string[] | undefined;
    let route: Route | undefined;
    let pathKnown = false;
    for (const candidate of this.routes) {
      const match = candidate.pattern.exec(path);
      if (!match) continue;
      pathKnown = true;
      if (candidate.method !== method) continue;
      route = candidate;
      params = match.slice(1).map((part) => part ?? '');
      break;
    }
    if (!route || !params)
      return pathKnown ? apiError(405, '405: Method Not Allowed', 0) : apiError(404, '404: Not Found', 0);
    const { template, major } = bucketOf(method, path);
    const bucket = createHash('sha1').update(template).digest('hex').slice(0, 32);
    if (route.auth && record.headers.authorization !== `Bot ${this.token}`)
      return this.withBucket(apiError(401, '401: Unauthorized', 0), bucket, major);
    const injection = this.injections.find((candidate) => candidate.route.test(`${method} ${path}`));
    if (injection) {
      injection.remaining -= 1;
      if (injection.remaining <= 0) this.injections.splice(this.injections.indexOf(injection), 1);
      const injected = injection.reply(bucket);
      return injected.headers ? injected : this.withBucket(injected, bucket, major);
    }
    const reply = await route.handle({
      method,
      path,
      params,
      query,
      body: parsed.body,
      uploads: parsed.uploads,
    });
    return this.withBucket(reply, bucket, major);
  }

  /** The normal rate-limit headers: a window of `bucketLimit` requests per bucket and top-level resource. */
  private withBucket(reply: Reply, bucket: string, major: string): Reply {
    const key = `${bucket}:${major}`;
    const now = Date.now();
    let state = this.buckets.get(key);
    if (!state || now >= state.start + this.bucketWindowMs) {
      state = { start: now, count: 0 };
      this.buckets.set(key, state);
    }
    state.count += 1;
    const resetAt = state.start + this.bucketWindowMs;
    return {
      ...reply,
      headers: {
        ...reply.headers,
        'X-RateLimit-Limit': String(this.bucketLimit),
        'X-RateLimit-Remaining': String(Math.max(0, this.bucketLimit - state.count)),
        'X-RateLimit-Reset': (resetAt / 1000).toFixed(3),
        'X-RateLimit-Reset-After': ((resetAt - now) / 1000).toFixed(3),
        'X-RateLimit-Bucket': bucket,
      },
    };
  }

  private async parseBody(
    contentType: string,
    raw: Buffer,
  ): Promise<{ body: unknown; uploads: Upload[] } | Reply> {
    if (raw.length === 0) return { body: null, uploads: [] };
    if (contentType.includes('multipart/form-data')) {
      let form: FormData;
      try {
        form = await new Request('http://fake-discord.invalid/', {
          method: 'POST',
          headers: { 'content-type': contentType },
          body: new Uint8Array(raw),
        }).formData();
      } catch {
        return apiError(400, 'The request body contains invalid form data.', 50109);
      }
      const uploads: Upload[] = [];
      let body: Json = {};
      const fields: Json = {};
      for (const [name, value] of form) {
        if (typeof value === 'string') {
          if (name === 'payload_json') {
            try {
              body = asRecord(JSON.parse(value));
            } catch {
              return apiError(400, 'The request body contains invalid JSON.', 50109);
            }
          } else fields[name] = value;
        } else {
          uploads.push({
            field: name,
            filename: value.name,
            ...(value.type ? { contentType: value.type } : {}),
            bytes: Buffer.from(await value.arrayBuffer()),
          });
        }
      }
      return { body: { ...fields, ...body }, uploads };
    }
    try {
      return { body: JSON.parse(raw.toString('utf8')), uploads: [] };
    } catch {
      return apiError(400, 'The request body contains invalid JSON.', 50109);
    }
  }

  private respond(res: ServerResponse, reply: Reply): void {
    if (res.writableEnded || res.destroyed) return;
    const headers: Record<string, string | number> = { ...reply.headers };
    if (reply.status === 204 || reply.body === undefined) {
      res.writeHead(reply.status, headers);
      res.end();
      return;
    }
    const text = JSON.stringify(reply.body);
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(text);
    res.writeHead(reply.status, headers);
    res.end(text);
  }

  private serveAttachment(pathname: string, res: ServerResponse): void {
    const match = /^\/attachments\/(\d+)\/(\d+)\/[^/]+$/.exec(pathname);
    const file = match ? this.findAttachment(match[2] ?? '') : undefined;
    this.downloads.push({ path: pathname, status: file ? 200 : 404 });
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('Not Found');
      return;
    }
    res.writeHead(200, {
      'Content-Type': file.content_type ?? 'application/octet-stream',
      'Content-Length': file.bytes.length,
    });
    res.end(file.bytes);
  }

  private readonly attachmentIndex = new Map<string, FakeDiscordAttachment>();

  private findAttachment(id: string): FakeDiscordAttachment | undefined {
    return this.attachmentIndex.get(id);
  }

  private attachmentFrom(
    channelId: string,
    file: { filename: string; bytes: Buffer; content_type?: string; description?: string },
  ): FakeDiscordAttachment {
    const id = nextSnowflake();
    const attachment: FakeDiscordAttachment = {
      id,
      filename: file.filename,
      bytes: file.bytes,
      size: file.bytes.length,
      url: `${this.origin}/attachments/${channelId}/${id}/${encodeURIComponent(file.filename)}`,
      ...(file.content_type ? { content_type: file.content_type } : {}),
      ...(file.description ? { description: file.description } : {}),
    };
    this.attachmentIndex.set(id, attachment);
    return attachment;
  }

  private apiAttachment(file: FakeDiscordAttachment): APIAttachment {
    return {
      id: file.id,
      filename: file.filename,
      size: file.size,
      url: file.url,
      proxy_url: file.url,
      ...(file.content_type ? { content_type: file.content_type } : {}),
      ...(file.description ? { description: file.description } : {}),
    };
  }

  // --- REST resources ----------------------------------------------------------------------------

  private buildRoutes(): Route[] {
    const id = '(\\d+)';
    const r = (method: string, pattern: string, handle: Route['handle'], auth = true): Route => ({
      method,
      pattern: new RegExp(`^${pattern}$`),
      auth,
      handle,
    });
    return [
      r('GET', '/gateway', () => ok({ url: this.gatewayUrl }), false),
      r('GET', '/gateway/bot', () =>
        ok({
          url: this.gatewayUrl,
          shards: this.shardCount,
          session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
        }),
      ),
      r('GET', '/users/@me', () =>
        ok({ ...this.botUser, flags: 0, verified: true, mfa_enabled: false, locale: 'en-US' }),
      ),
      r('GET', '/(?:oauth2/)?applications/@me', () =>
        ok({
          id: this.applicationId,
          name: 'hermes-bot',
          description: '',
          bot_public: false,
          bot_require_code_grant: false,
          verify_key: this.publicKeyHex,
          flags: 0,
          bot: this.botUser,
        }),
      ),
      r('GET', `/channels/${id}`, (ctx) => this.getChannel(ctx.params[0] ?? '')),
      r('PATCH', `/channels/${id}`, (ctx) => this.patchChannel(ctx.params[0] ?? '', asRecord(ctx.body))),
      r('GET', `/channels/${id}/messages`, (ctx) => this.listMessages(ctx.params[0] ?? '', ctx.query)),
      r('POST', `/channels/${id}/messages`, (ctx) => this.postMessage(ctx)),
      r('GET', `/channels/${id}/messages/${id}`, (ctx) => {
        const message = this.messageIn(ctx.params[0] ?? '', ctx.params[1] ?? '');
        return 'status' in message ? message : ok(this.toApiMessage(message));
      }),
      r('PATCH', `/channels/${id}/messages/${id}`, (ctx) => this.patchMessage(ctx)),
      r('DELETE', `/channels/${id}/messages/${id}`, (ctx) => this.deleteMessage(ctx)),
      r('PUT', `/channels/${id}/messages/${id}/reactions/([^/]+)/@me`, (ctx) => this.react(ctx, true)),
      r('DELETE', `/channels/${id}/messages/${id}/reactions/([^/]+)/@me`, (ctx) => this.react(ctx, false)),
      r('POST', `/channels/${id}/typing`, (ctx) => {
        const channelId = ctx.params[0] ?? '';
        const channel = this.channels.get(channelId);
        if (!channel) return unknownChannel();
        this.typing.push(channelId);
        this.echoEvent(
          'TYPING_START',
          {
            channel_id: channelId,
            user_id: this.botUserId,
            timestamp: Math.floor(Date.now() / 1000),
            ...(channel.guild_id ? { guild_id: channel.guild_id } : {}),
          },
          channel.guild_id,
          { guild: INTENT.guildMessageTyping, dm: INTENT.directMessageTyping },
        );
        return noContent();
      }),
      r('POST', `/channels/${id}/threads`, (ctx) => this.startThread(ctx, undefined)),
      r('POST', `/channels/${id}/messages/${id}/threads`, (ctx) => this.startThread(ctx, ctx.params[1])),
      r('POST', `/interactions/${id}/([^/]+)/callback`, (ctx) => this.callback(ctx), false),
      r('POST', `/webhooks/${id}/([^/]+)`, (ctx) => this.webhookPost(ctx), false),
      r('GET', `/webhooks/${id}/([^/]+)/messages/(@original|\\d+)`, (ctx) => this.webhookMessage(ctx), false),
      r(
        'PATCH',
        `/webhooks/${id}/([^/]+)/messages/(@original|\\d+)`,
        (ctx) => this.webhookMessage(ctx),
        false,
      ),
      r(
        'DELETE',
        `/webhooks/${id}/([^/]+)/messages/(@original|\\d+)`,
        (ctx) => this.webhookMessage(ctx),
        false,
      ),
      r('GET', `/applications/${id}/commands`, (ctx) => this.getCommands(ctx.params[0] ?? '', 'global')),
      r('PUT', `/applications/${id}/commands`, (ctx) =>
        this.putCommands(ctx.params[0] ?? '', 'global', ctx.body),
      ),
      r('GET', `/applications/${id}/guilds/${id}/commands`, (ctx) =>
        this.getCommands(ctx.params[0] ?? '', ctx.params[1] ?? ''),
      ),
      r('PUT', `/applications/${id}/guilds/${id}/commands`, (ctx) =>
        this.putCommands(ctx.params[0] ?? '', ctx.params[1] ?? '', ctx.body),
      ),
    ];
  }

  private apiChannel(channel: FakeDiscordChannel): Json {
    const thread = this.threads.find((candidate) => candidate.id === channel.id);
    return {
      id: channel.id,
      type: channel.type,
      ...(channel.name !== undefined ? { name: channel.name } : {}),
      ...(channel.guild_id ? { guild_id: channel.guild_id } : {}),
      ...(channel.parent_id ? { parent_id: channel.parent_id } : {}),
      flags: 0,
      ...(DM_CHANNEL_TYPES.has(channel.type)
        ? { recipients: [], last_message_id: null }
        : { position: 0, permission_overwrites: [], nsfw: false, rate_limit_per_user: 0 }),
      ...(thread
        ? {
            owner_id: this.botUserId,
            message_count: 0,
            member_count: 1,
            total_message_sent: 0,
            thread_metadata: {
              archived: false,
              auto_archive_duration: 1440,
              archive_timestamp: new Date().toISOString(),
              locked: false,
            },
          }
        : {}),
    };
  }

  private getChannel(channelId: string): Reply {
    const channel = this.channels.get(channelId);
    return channel ? ok(this.apiChannel(channel)) : unknownChannel();
  }

  private patchChannel(channelId: string, body: Json): Reply {
    const channel = this.channels.get(channelId);
    if (!channel) return unknownChannel();
    if (body.name !== undefined) {
      if (typeof body.name !== 'string' || body.name.length < 1 || body.name.length > 100)
        return fieldError(['name'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
      channel.name = body.name;
      const thread = this.threads.find((candidate) => candidate.id === channelId);
      if (thread) thread.name = body.name;
    }
    const data = this.apiChannel(channel);
    const isThread = THREAD_TYPES.has(channel.type);
    this.echoEvent(isThread ? 'THREAD_UPDATE' : 'CHANNEL_UPDATE', data, channel.guild_id, {
      guild: INTENT.guilds,
      dm: 0,
    });
    return ok(data);
  }

  private listMessages(channelId: string, query: URLSearchParams): Reply {
    if (!this.channels.has(channelId)) return unknownChannel();
    const limit = Math.min(Math.max(Number(query.get('limit') ?? 50) || 50, 1), 100);
    const before = query.get('before');
    const after = query.get('after');
    let list = [...this.messages.values()].filter((message) => message.channel_id === channelId);
    if (before) list = list.filter((message) => BigInt(message.id) < BigInt(before));
    if (after) list = list.filter((message) => BigInt(message.id) > BigInt(after));
    list.sort((a, b) => (BigInt(b.id) > BigInt(a.id) ? 1 : -1));
    return ok(list.slice(0, limit).map((message) => this.toApiMessage(message)));
  }

  private messageIn(channelId: string, messageId: string): FakeDiscordMessage | Reply {
    if (!this.channels.has(channelId)) return unknownChannel();
    const message = this.messages.get(messageId);
    return message && message.channel_id === channelId ? message : unknownMessage();
  }

  private postMessage(ctx: Ctx): Reply {
    const channelId = ctx.params[0] ?? '';
    if (!this.channels.has(channelId)) return unknownChannel();
    const created = this.createMessage(channelId, asRecord(ctx.body), ctx.uploads, { source: 'rest' });
    return 'status' in created ? created : ok(this.toApiMessage(created));
  }

  private patchMessage(ctx: Ctx): Reply {
    const message = this.messageIn(ctx.params[0] ?? '', ctx.params[1] ?? '');
    if ('status' in message) return message;
    if (message.author.id !== this.botUserId || message.webhook_id)
      return apiError(403, 'Cannot edit a message authored by another user', 50005);
    const edited = this.editMessage(message, asRecord(ctx.body), ctx.uploads);
    return 'status' in edited ? edited : ok(this.toApiMessage(edited));
  }

  private deleteMessage(ctx: Ctx): Reply {
    const message = this.messageIn(ctx.params[0] ?? '', ctx.params[1] ?? '');
    if ('status' in message) return message;
    this.removeMessage(message);
    return noContent();
  }

  private removeMessage(message: FakeDiscordMessage): void {
    this.messages.delete(message.id);
    this.deletedMessages.push(message.id);
    this.echoEvent(
      'MESSAGE_DELETE',
      {
        id: message.id,
        channel_id: message.channel_id,
        ...(message.guild_id ? { guild_id: message.guild_id } : {}),
      },
      message.guild_id,
      { guild: INTENT.guildMessages, dm: INTENT.directMessages },
    );
  }

  private react(ctx: Ctx, add: boolean): Reply {
    const message = this.messageIn(ctx.params[0] ?? '', ctx.params[1] ?? '');
    if ('status' in message) return message;
    // The path is already decoded: the emoji is as the caller meant it.
    const emoji = ctx.params[2] ?? '';
    if (!validEmoji(emoji)) return apiError(400, 'Unknown Emoji', 10014);
    const had = message.reactions.includes(emoji);
    if (add && !had) message.reactions.push(emoji);
    if (!add && had) message.reactions.splice(message.reactions.indexOf(emoji), 1);
    if (add !== had)
      this.echoEvent(
        add ? 'MESSAGE_REACTION_ADD' : 'MESSAGE_REACTION_REMOVE',
        {
          user_id: this.botUserId,
          channel_id: message.channel_id,
          message_id: message.id,
          emoji: apiEmoji(emoji),
          burst: false,
          type: 0,
          ...(message.guild_id ? { guild_id: message.guild_id } : {}),
        },
        message.guild_id,
        { guild: INTENT.guildMessageReactions, dm: INTENT.directMessageReactions },
      );
    return noContent();
  }

  private startThread(ctx: Ctx, messageId: string | undefined): Reply {
    const parentId = ctx.params[0] ?? '';
    const parent = this.channels.get(parentId);
    if (!parent) return unknownChannel();
    if (DM_CHANNEL_TYPES.has(parent.type))
      return apiError(400, 'Cannot execute action on a DM channel', 50003);
    const forum = parent.type === 15 || parent.type === 16;
    if (![0, 5, 15, 16].includes(parent.type) || (messageId && forum))
      return apiError(400, 'Cannot execute action on this channel type', 50024);
    const body = asRecord(ctx.body);
    if (typeof body.name !== 'string' || body.name.length === 0)
      return fieldError(['name'], 'BASE_TYPE_REQUIRED', 'This field is required');
    if (body.name.length > 100)
      return fieldError(['name'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
    let threadId: string;
    let type: number;
    if (messageId) {
      const message = this.messages.get(messageId);
      if (!message || message.channel_id !== parentId) return unknownMessage();
      if (message.thread_id)
        return apiError(400, 'A thread has already been created for this message', 160004);
      // A thread started from a message takes the message's id.
      threadId = message.id;
      type = parent.type === 5 ? 10 : 11;
      message.thread_id = threadId;
    } else {
      threadId = nextSnowflake();
      type = forum ? 11 : typeof body.type === 'number' ? body.type : 12;
      if (!THREAD_TYPES.has(type))
        return fieldError(['type'], 'BASE_TYPE_CHOICES', 'Value must be one of {10, 11, 12}.');
      if (forum && !isRecord(body.message))
        return fieldError(['message'], 'BASE_TYPE_REQUIRED', 'This field is required');
    }
    const channel: FakeDiscordChannel = {
      id: threadId,
      type,
      name: body.name,
      parent_id: parentId,
      ...(parent.guild_id ? { guild_id: parent.guild_id } : {}),
    };
    this.channels.set(threadId, channel);
    this.threads.push({
      id: threadId,
      parent_id: parentId,
      name: body.name,
      type,
      ...(messageId ? { message_id: messageId } : {}),
    });
    let starter: FakeDiscordMessage | undefined;
    if (forum) {
      // A forum post's first message has the thread's id.
      const created = this.createMessage(threadId, asRecord(body.message), ctx.uploads, {
        source: 'rest',
        id: threadId,
      });
      if ('status' in created) {
        this.channels.delete(threadId);
        this.threads.pop();
        return created;
      }
      starter = created;
    }
    const data = { ...this.apiChannel(channel), newly_created: true };
    this.echoEvent('THREAD_CREATE', data, channel.guild_id, { guild: INTENT.guilds, dm: 0 });
    return ok(
      { ...this.apiChannel(channel), ...(starter ? { message: this.toApiMessage(starter) } : {}) },
      201,
    );
  }

  private callback(ctx: Ctx): Reply {
    const interaction = this.interactions.get(ctx.params[0] ?? '');
    if (!interaction || interaction.token !== ctx.params[1]) return unknownInteraction();
    if (Date.now() - interaction.createdAt > this.responseWindowMs) return unknownInteraction();
    if (interaction.acknowledged) return apiError(400, 'Interaction has already been acknowledged.', 40060);
    const body = asRecord(ctx.body);
    const failed = this.applyCallback(interaction, body, ctx.uploads, 'rest');
    if (failed) return failed;
    if (ctx.query.get('with_response') !== 'true') return noContent();
    const original = interaction.originalId ? this.messages.get(interaction.originalId) : undefined;
    return ok({
      interaction: {
        id: interaction.id,
        type: interaction.type,
        activity_instance_id: null,
        response_message_id: original?.id ?? null,
        response_message_loading: original ? (original.flags & FLAG_LOADING) !== 0 : false,
        response_message_ephemeral: original ? (original.flags & FLAG_EPHEMERAL) !== 0 : false,
      },
      resource: {
        type: body.type,
        ...(original ? { message: this.toApiMessage(original) } : {}),
      },
    });
  }

  private webhookInteraction(ctx: Ctx): InteractionRecord | undefined {
    if (ctx.params[0] !== this.applicationId) return undefined;
    return this.interactionsByToken.get(ctx.params[1] ?? '');
  }

  private webhookPost(ctx: Ctx): Reply {
    const interaction = this.webhookInteraction(ctx);
    if (!interaction) return unknownWebhook();
    const created = this.createMessage(interaction.channelId ?? 'unknown', asRecord(ctx.body), ctx.uploads, {
      source: 'interaction',
      messageType: 0,
    });
    if ('status' in created) return created;
    interaction.messageIds.add(created.id);
    this.followUps.push({ token: interaction.token, body: ctx.body, messageId: created.id });
    return ok(this.toApiMessage(created));
  }

  private webhookMessage(ctx: Ctx): Reply {
    const interaction = this.webhookInteraction(ctx);
    if (!interaction) return unknownWebhook();
    const which = ctx.params[2] ?? '';
    const messageId = which === '@original' ? interaction.originalId : which;
    const message =
      messageId && interaction.messageIds.has(messageId) ? this.messages.get(messageId) : undefined;
    if (!message) return unknownMessage();
    if (ctx.method === 'GET') return ok(this.toApiMessage(message));
    if (ctx.method === 'DELETE') {
      this.removeMessage(message);
      return noContent();
    }
    const edited = this.editMessage(message, asRecord(ctx.body), ctx.uploads);
    if ('status' in edited) return edited;
    this.followUps.push({ token: interaction.token, body: ctx.body, messageId: message.id, edited: true });
    return ok(this.toApiMessage(edited));
  }

  private getCommands(applicationId: string, scope: string): Reply {
    if (applicationId !== this.applicationId) return apiError(403, 'Missing Access', 50001);
    return ok(this.commands.find((entry) => entry.scope === scope)?.commands ?? []);
  }

  private putCommands(applicationId: string, scope: string, body: unknown): Reply {
    if (applicationId !== this.applicationId) return apiError(403, 'Missing Access', 50001);
    if (!Array.isArray(body)) return fieldError([], 'BASE_TYPE_ARRAY', 'Must be an array.');
    const entry = this.commands.find((candidate) => candidate.scope === scope);
    const previous = (entry?.commands ?? []) as Json[];
    const commands: Json[] = [];
    for (const [index, item] of body.entries()) {
      const command = asRecord(item);
      const type = typeof command.type === 'number' ? command.type : 1;
      const name = command.name;
      if (
        typeof name !== 'string' ||
        !/^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u.test(name) ||
        (type === 1 && name !== name.toLowerCase())
      )
        return fieldError([index, 'name'], 'APPLICATION_COMMAND_INVALID_NAME', 'Command name is invalid');
      const description = command.description ?? '';
      if (
        type === 1 &&
        (typeof description !== 'string' || description.length < 1 || description.length > 100)
      )
        return fieldError(
          [index, 'description'],
          'BASE_TYPE_BAD_LENGTH',
          'Must be between 1 and 100 in length.',
        );
      if (commands.some((other) => other.name === name && other.type === type))
        return fieldError(
          [index, 'name'],
          'APPLICATION_COMMANDS_DUPLICATE_NAME',
          'Application command names must be unique',
        );
      const kept = previous.find((other) => other.name === name && other.type === type);
      commands.push({
        ...command,
        id: str(kept?.id) ?? nextSnowflake(),
        application_id: this.applicationId,
        version: nextSnowflake(),
        type,
        name,
        description,
        default_member_permissions: command.default_member_permissions ?? null,
        nsfw: command.nsfw ?? false,
        ...(scope === 'global' ? {} : { guild_id: scope }),
      });
    }
    if (entry) {
      entry.commands = commands;
      entry.puts += 1;
    } else this.commands.push({ scope, commands, puts: 1 });
    return ok(commands);
  }

  // --- messages ----------------------------------------------------------------------------------

  /** Discord's checks for a new message (or a new message body), then the message, stored and echoed. */
  private createMessage(
    channelId: string,
    body: Json,
    uploads: Upload[],
    options: { source: 'rest' | 'interaction'; messageType?: number; allowEmpty?: boolean; id?: string },
  ): FakeDiscordMessage | Reply {
    const problem = this.checkBody(body, uploads, !options.allowEmpty);
    if (problem) return problem;
    const channel = this.channels.get(channelId);
    let reference: FakeDiscordMessage['message_reference'];
    const ref = body.message_reference;
    if (isRecord(ref) && str(ref.message_id)) {
      const target = this.messages.get(str(ref.message_id) ?? '');
      const refChannel = str(ref.channel_id) ?? channelId;
      if (target && target.channel_id === refChannel) {
        reference = {
          message_id: target.id,
          channel_id: target.channel_id,
          ...(target.guild_id ? { guild_id: target.guild_id } : {}),
        };
      } else if (ref.fail_if_not_exists !== false) {
        return fieldError(['message_reference'], 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', 'Unknown message');
      }
    }
    const attachments = this.attachmentsFor(channelId, body, uploads);
    const message: FakeDiscordMessage = {
      id: options.id ?? nextSnowflake(),
      channel_id: channelId,
      ...(channel?.guild_id ? { guild_id: channel.guild_id } : {}),
      author: { ...this.botUser },
      content: typeof body.content === 'string' ? body.content : '',
      ...(Array.isArray(body.components) ? { components: body.components } : {}),
      ...(Array.isArray(body.embeds) ? { embeds: body.embeds } : {}),
      attachments,
      ...(reference ? { message_reference: reference } : {}),
      flags: typeof body.flags === 'number' ? body.flags : 0,
      type: options.messageType ?? (reference ? 19 : 0),
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      edited: false,
      edits: 0,
      reactions: [],
      ...(options.source === 'interaction' ? { webhook_id: this.applicationId } : {}),
      source: options.source,
    };
    this.messages.set(message.id, message);
    this.echoMessage('MESSAGE_CREATE', message);
    return message;
  }

  private editMessage(
    message: FakeDiscordMessage,
    body: Json,
    uploads: Upload[],
  ): FakeDiscordMessage | Reply {
    const problem = this.checkBody(body, uploads, false);
    if (problem) return problem;
    let attachments = message.attachments;
    if (Array.isArray(body.attachments)) {
      const keep = new Set(body.attachments.map((item) => str(asRecord(item).id)).filter(Boolean));
      attachments = attachments.filter((attachment) => keep.has(attachment.id));
    }
    attachments = [...attachments, ...this.attachmentsFor(message.channel_id, body, uploads)];
    const next = {
      content: 'content' in body ? (typeof body.content === 'string' ? body.content : '') : message.content,
      embeds: 'embeds' in body ? (Array.isArray(body.embeds) ? body.embeds : []) : message.embeds,
      components:
        'components' in body ? (Array.isArray(body.components) ? body.components : []) : message.components,
    };
    if (!next.content && !next.embeds?.length && !next.components?.length && attachments.length === 0)
      return apiError(400, 'Cannot send an empty message', 50006);
    message.content = next.content;
    if (next.embeds) message.embeds = next.embeds;
    if (next.components) message.components = next.components;
    message.attachments = attachments;
    if (typeof body.flags === 'number') message.flags = body.flags;
    message.flags &= ~FLAG_LOADING;
    message.edited = true;
    message.edits += 1;
    message.edited_timestamp = new Date().toISOString();
    this.echoMessage('MESSAGE_UPDATE', message);
    return message;
  }

  /** Form checks Discord makes on a message body: length, custom_id length, emptiness, upload size. */
  private checkBody(body: Json, uploads: Upload[], requireSomething: boolean): Reply | undefined {
    if (body.content !== undefined && body.content !== null && typeof body.content !== 'string')
      return fieldError(['content'], 'STRING_TYPE_CONVERT', 'Could not interpret the value as a string.');
    if (typeof body.content === 'string' && body.content.length > 2000)
      return fieldError(['content'], 'BASE_TYPE_MAX_LENGTH', 'Must be 2000 or fewer in length.');
    if (Array.isArray(body.embeds) && body.embeds.length > 10)
      return fieldError(['embeds'], 'BASE_TYPE_MAX_LENGTH', 'Must be 10 or fewer in length.');
    const longId = longCustomId(body.components, ['components']);
    if (longId) return fieldError(longId, 'BASE_TYPE_MAX_LENGTH', 'Must be 100 or fewer in length.');
    const total = uploads.reduce((sum, upload) => sum + upload.bytes.length, 0);
    if (total > this.maxUploadBytes) return apiError(413, 'Request entity too large', 40005);
    if (
      requireSomething &&
      !(typeof body.content === 'string' && body.content.length > 0) &&
      !(Array.isArray(body.embeds) && body.embeds.length > 0) &&
      !(Array.isArray(body.components) && body.components.length > 0) &&
      !(Array.isArray(body.sticker_ids) && body.sticker_ids.length > 0) &&
      body.poll === undefined &&
      uploads.length === 0
    )
      return apiError(400, 'Cannot send an empty message', 50006);
    return undefined;
  }

  /** `files[n]` parts, named by `attachments[].id === n` in payload_json when given. */
  private attachmentsFor(channelId: string, body: Json, uploads: Upload[]): FakeDiscordAttachment[] {
    const described = Array.isArray(body.attachments) ? body.attachments.map(asRecord) : [];
    return uploads.map((upload, index) => {
      const slot = /^files\[(\d+)\]$/.exec(upload.field)?.[1] ?? String(index);
      const meta = described.find((item) => str(item.id) === slot) ?? {};
      return this.attachmentFrom(channelId, {
        filename: typeof meta.filename === 'string' ? meta.filename : upload.filename,
        bytes: upload.bytes,
        ...(upload.contentType ? { content_type: upload.contentType } : {}),
        ...(typeof meta.description === 'string' ? { description: meta.description } : {}),
      });
    });
  }

  private toApiMessage(message: FakeDiscordMessage): APIMessage {
    const reactions = message.reactions.map((emoji) => ({
      emoji: apiEmoji(emoji),
      count: 1,
      count_details: { burst: 0, normal: 1 },
      me: true,
      me_burst: false,
      burst_colors: [],
    }));
    if (message.raw) {
      const { guild_id: _guild, member: _member, ...rest } = message.raw;
      return {
        ...rest,
        content: message.content,
        ...(reactions.length ? { reactions } : {}),
      } as APIMessage;
    }
    const referenced = message.message_reference?.message_id
      ? this.messages.get(message.message_reference.message_id)
      : undefined;
    return {
      id: message.id,
      type: message.type,
      channel_id: message.channel_id,
      author: message.author,
      content: message.content,
      timestamp: message.timestamp,
      edited_timestamp: message.edited_timestamp,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: message.attachments.map((attachment) => this.apiAttachment(attachment)),
      embeds: (message.embeds ?? []) as APIMessage['embeds'],
      components: (message.components ?? []) as APIMessage['components'],
      pinned: false,
      flags: message.flags,
      ...(reactions.length ? { reactions } : {}),
      ...(message.webhook_id ? { webhook_id: message.webhook_id, application_id: this.applicationId } : {}),
      ...(message.message_reference ? { message_reference: { type: 0, ...message.message_reference } } : {}),
      ...(referenced
        ? { referenced_message: this.toApiMessage({ ...referenced, message_reference: undefined }) }
        : {}),
      ...(message.thread_id && message.thread_id === message.id
        ? { thread: this.apiChannel(this.channels.get(message.id) ?? { id: message.id, type: 11 }) }
        : {}),
    } as APIMessage;
  }
}

/** Start a fake Discord on 127.0.0.1 at a random port. */
export async function startFakeDiscord(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  return startFakeServer((server, port) => new FakeDiscordServer(server, port, options));
}
