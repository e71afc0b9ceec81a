import { AsyncLocalStorage } from 'node:async_hooks';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { Api, GrammyError, HttpError, InputFile } from 'grammy';
import type { CallbackQuery, Chat, Message, ReactionTypeEmoji, Update, User } from 'grammy/types';
import type { Logger } from 'pino';
import { backoffDelay } from '../../common/backoff.js';
import { neverSent } from '../../common/errors.js';
import { redact } from '../../common/redact.js';
import {
  type CapabilityDescriptor,
  CONTRACT_VERSION,
  decodePromptToken,
  type EditAction,
  encodePromptToken,
  failedResult,
  type GetChatInfoAction,
  type MessageEventInit,
  type MessageType,
  mediaIdFromUrl,
  OUTBOUND_OP_TIMEOUT_MS,
  type OutboundResult,
  type PromptAction,
  RATE_LIMITED_CODE,
  type ReactAction,
  type SendAction,
  type SendMediaAction,
  type SessionSourceInit,
  type ThreadCreateAction,
  type ThreadRenameAction,
  type TypingAction,
} from '../../protocol/index.js';
import { botKey, botLeaseName } from './lease.js';
import type { InboundAttachment, PlatformAdapter, PlatformContext, PlatformInbound } from './types.js';

/**
 * Telegram through the Bot API, by long polling (`getUpdates`) with grammY's `Api` client.
 *
 * Durability: an update is acknowledged to Telegram (the `offset` moves past it) only after
 * `context.ingest` has resolved, i.e. the event is in the outbox, or the chat has no route. A store
 * failure stops the offset and the same updates are fetched again after a backoff, so a crash or a
 * failing store can duplicate an update but never lose one.
 */

const TELEGRAM_DEFAULT_API_ROOT = 'https://api.telegram.org';
export const TELEGRAM_NO_ROUTE_NOTICE = 'This chat is not connected to an agent yet.';
const ALLOWED_UPDATES = ['message', 'edited_message', 'callback_query'] as const;
const DEFAULT_POLL_TIMEOUT_SECONDS = 25;
/** A file a message carries is fetched within this long (Telegram serves bots files up to 20 MB). */
const FILE_DOWNLOAD_TIMEOUT_MS = 30_000;
const DEFAULT_BACKOFF = { initialMs: 1_000, maxMs: 30_000 };
/** How long `stop()` spends telling Telegram which updates were handled. */
const CONFIRM_TIMEOUT_MS = 5_000;
/** `TELEGRAM_MAX_RETRY_AFTER_SECONDS` default: the longest one 429 keeps a chat's ops waiting. */
export const DEFAULT_TELEGRAM_MAX_RETRY_AFTER_SECONDS = 60;
/**
 * What an op may spend waiting for its chat's rate limit (the `retry_after`, and the chat's ops
 * queued ahead of it): the connector's op timeout less time for the call itself, so an op that
 * cannot be sent in time is answered "rate limited" instead of timing out and being sent later.
 */
const OP_WAIT_BUDGET_MS = OUTBOUND_OP_TIMEOUT_MS - 5_000;

export interface TelegramAdapterOptions {
  /** Bot token from @BotFather. Never logged. */
  token: string;
  /** `TELEGRAM_API_ROOT`; default https://api.telegram.org. */
  apiRoot?: string;
  log: Logger;
  /** Long-poll timeout passed to `getUpdates` (default 25 s). */
  pollTimeoutSeconds?: number;
  /** Retry delays after a polling or store failure, doubling from `initialMs` to `maxMs` (1 s → 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /**
   * `TELEGRAM_MAX_RETRY_AFTER_SECONDS`: a 429's `retry_after` closes its chat's gate for at most this
   * long (default 60); an op still refused after it asks Telegram again.
   */
  maxRetryAfterSeconds?: number;
  /** Longest wait for a chat's rate limit before an op is answered `rate_limited` (default 25 s). */
  opWaitBudgetMs?: number;
}

export type TelegramPollingState = 'idle' | 'polling' | 'stopped' | 'unauthorized';

type ChatType = 'dm' | 'group' | 'forum' | 'channel';

/** private → dm, group/supergroup → group, a forum topic → forum (with thread id), channel → channel. */
function telegramChatType(chat: Pick<Chat, 'type'> & { is_forum?: boolean }, threadId?: number): ChatType {
  switch (chat.type) {
    case 'private':
      return 'dm';
    case 'channel':
      return 'channel';
    case 'supergroup':
      return chat.is_forum && threadId !== undefined ? 'forum' : 'group';
    default:
      return 'group';
  }
}

function personName(person: { first_name?: string; last_name?: string }): string | undefined {
  const name = [person.first_name, person.last_name].filter((part) => part).join(' ');
  return name || undefined;
}

function userName(user: User): string | undefined {
  return user.username || personName(user);
}

function captionedType(message: Message): MessageType {
  if (message.sticker) return 'sticker';
  if (message.photo) return 'photo';
  if (message.voice) return 'voice';
  if (message.document) return 'document';
  if (message.video) return 'video';
  if (message.audio) return 'audio';
  return 'text';
}

/** A file of a Telegram message, to fetch with `getFile` (the download URL holds the bot token). */
export interface TelegramFile {
  fileId: string;
  kind: InboundAttachment['kind'];
  mime?: string;
  filename?: string;
}

/** The file a message carries: the largest size of a photo; voice, audio, video, document, sticker. */
export function telegramFiles(message: Message): TelegramFile[] {
  const named = (mime: string | undefined, filename: string | undefined) => ({
    ...(mime ? { mime } : {}),
    ...(filename ? { filename } : {}),
  });
  const photo = message.photo?.at(-1);
  if (photo) return [{ fileId: photo.file_id, kind: 'image', mime: 'image/jpeg' }];
  if (message.voice)
    return [
      {
        fileId: message.voice.file_id,
        kind: 'voice',
        ...named(message.voice.mime_type ?? 'audio/ogg', undefined),
      },
    ];
  if (message.audio)
    return [
      {
        fileId: message.audio.file_id,
        kind: 'audio',
        ...named(message.audio.mime_type, message.audio.file_name),
      },
    ];
  if (message.video)
    return [
      {
        fileId: message.video.file_id,
        kind: 'video',
        ...named(message.video.mime_type, message.video.file_name),
      },
    ];
  if (message.document)
    return [
      {
        fileId: message.document.file_id,
        kind: 'document',
        ...named(message.document.mime_type, message.document.file_name),
      },
    ];
  if (message.sticker) {
    const mime = message.sticker.is_video
      ? 'video/webm'
      : message.sticker.is_animated
        ? 'application/x-tgsticker'
        : 'image/webp';
    return [{ fileId: message.sticker.file_id, kind: 'sticker', mime }];
  }
  return [];
}

/**
 * One Telegram update as a routed `MessageEvent` with the files to re-host, or `undefined` when
 * there is nothing for an agent (no text, no caption and no file, or an update type this adapter
 * does not ask for).
 */
/**
 * `botId`: this bot's user id (the token's numeric prefix), so a reply to the bot counts as
 * addressed to it; commands always do.
 */
export function normaliseTelegramUpdate(
  update: Update,
  botId?: number,
): (PlatformInbound & { files: TelegramFile[] }) | undefined {
  if (update.callback_query) return normaliseCallback(update.callback_query);
  const edited = update.message === undefined && update.edited_message !== undefined;
  const message: Message | undefined = update.message ?? update.edited_message;
  if (!message) return undefined;
  const text = message.text ?? message.caption ?? '';
  const files = telegramFiles(message);
  if (!text && files.length === 0) return undefined;

  const chat = message.chat;
  const threadId = message.message_thread_id;
  const chatType = telegramChatType(chat, threadId);
  const from = message.from;

  // Inside a forum topic every message that is not a real reply points at the topic's creation
  // message, whose id is the thread id: that is not a reply the agent should see.
  const replyTo = message.reply_to_message;
  const isTopicStarterReply = chatType === 'forum' && replyTo?.message_id === threadId;
  const replyToId = replyTo && !isTopicStarterReply ? String(replyTo.message_id) : undefined;

  const sender = from ? userName(from) : undefined;
  const chatName =
    ('title' in chat ? chat.title : undefined) ||
    personName(chat as { first_name?: string; last_name?: string }) ||
    ('username' in chat ? chat.username : undefined) ||
    sender;

  const source: SessionSourceInit = {
    platform: 'telegram',
    chat_id: String(chat.id),
    chat_type: chatType,
    message_id: String(message.message_id),
    is_bot: from?.is_bot === true,
    message_is_edit: edited,
  };
  if (chatName) source.chat_name = chatName;
  if (chatType === 'forum' && threadId !== undefined) source.thread_id = String(threadId);
  if (from) source.user_id = String(from.id);
  else if (message.sender_chat) source.user_id = String(message.sender_chat.id);
  if (sender) source.user_name = sender;

  const event: MessageEventInit = {
    text,
    message_type:
      message.text !== undefined ? (text.startsWith('/') ? 'command' : 'text') : captionedType(message),
    message_id: String(message.message_id),
    source,
  };
  if (replyToId) {
    event.reply_to_message_id = replyToId;
    // What is being answered (current §5.4): its text or caption, its author, whether it is ours.
    const quoted = replyTo?.text ?? replyTo?.caption;
    const author = replyTo?.from ? userName(replyTo.from) : undefined;
    const answered = {
      ...(quoted ? { text: quoted } : {}),
      ...(author ? { author } : {}),
      ...(replyTo?.from ? { is_own: botId !== undefined && replyTo.from.id === botId } : {}),
    };
    if (Object.keys(answered).length > 0) event.reply_to = answered;
  }
  const addressed = text.startsWith('/') || (botId !== undefined && replyTo?.from?.id === botId);
  return { routeKey: String(chat.id), event, addressed, files };
}

/**
 * A press on one of our prompt buttons as the inbound of current §7.4: `prompt_response`, text
 * `/<option_id>` (so an older gateway still sees a typed command), from the user who pressed it.
 * A payload that is not our callback token is foreign: undefined.
 */
function normaliseCallback(query: CallbackQuery): (PlatformInbound & { files: TelegramFile[] }) | undefined {
  const token = query.data === undefined ? undefined : decodePromptToken(query.data);
  const message = query.message;
  if (!token || !message) return undefined;
  const chat = message.chat;
  const threadId = 'message_thread_id' in message ? message.message_thread_id : undefined;
  const chatType = telegramChatType(chat, threadId);
  const label = ('reply_markup' in message ? message.reply_markup?.inline_keyboard.flat() : undefined)?.find(
    (button) => 'callback_data' in button && button.callback_data === query.data,
  )?.text;
  const source: SessionSourceInit = {
    platform: 'telegram',
    chat_id: String(chat.id),
    chat_type: chatType,
    user_id: String(query.from.id),
    is_bot: query.from.is_bot === true,
    message_is_edit: false,
  };
  const sender = userName(query.from);
  if (sender) source.user_name = sender;
  if (chatType === 'forum' && threadId !== undefined) source.thread_id = String(threadId);
  const event: MessageEventInit = {
    text: `/${token.optionId}`,
    message_type: 'command',
    message_id: `cb-${query.id}`,
    prompt_response: {
      prompt_id: token.promptId,
      option_id: token.optionId,
      prompt_message_id: String(message.message_id),
      ...(label ? { label } : {}),
    },
    source,
  };
  return { routeKey: String(chat.id), event, addressed: true, files: [] };
}

/** A Telegram integer id from the wire (`"42"`, `42`); anything else is `undefined`. */
function integerId(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value.trim())) {
    const parsed = Number(value.trim());
    return Number.isSafeInteger(parsed) ? parsed : undefined;
  }
  return undefined;
}

function threadIdFrom(metadata: Record<string, unknown> | undefined): number | undefined {
  const id = integerId(metadata?.thread_id);
  return id !== undefined && id > 0 ? id : undefined;
}

function isParseEntitiesError(err: unknown): boolean {
  return (
    err instanceof GrammyError && err.error_code === 400 && /can't parse entities/i.test(err.description)
  );
}

function isNotModified(err: unknown): boolean {
  return (
    err instanceof GrammyError && err.error_code === 400 && /message is not modified/i.test(err.description)
  );
}

/** A network failure after which the request may still have reached Telegram. */
function mayHaveReachedTelegram(err: unknown): boolean {
  return err instanceof HttpError && !neverSent(err.error);
}

/** grammY types its `signal` parameters with the `abort-controller` polyfill; a native one works. */
type GrammySignal = NonNullable<Parameters<Api['getUpdates']>[1]>;
const grammySignal = (signal: AbortSignal): GrammySignal => signal as unknown as GrammySignal;

/** Wait `ms`, or less if the poller is stopped meanwhile (an abort ends the wait, never throws). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}

/** Seconds Telegram asked to wait in a 429 (`parameters.retry_after`; 1 when it names none), else undefined. */
export function telegramRetryAfter(err: unknown): number | undefined {
  if (!(err instanceof GrammyError) || err.error_code !== 429) return undefined;
  const seconds = err.parameters?.retry_after;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : 1;
}

/** An op refused because its chat is rate limited: it was not sent. */
export class ChatRateLimited extends Error {
  override readonly name = 'ChatRateLimited';
  constructor(readonly retryAfterSeconds: number) {
    super(`rate limited by Telegram: retry after ${retryAfterSeconds} s`);
  }
}

/** The op result of {@link ChatRateLimited}: definite (nothing was sent), with the wait in seconds. */
export function rateLimitedResult(limited: ChatRateLimited): OutboundResult {
  return {
    success: false,
    code: RATE_LIMITED_CODE,
    error: limited.message,
    retry_after: limited.retryAfterSeconds,
  };
}

export interface ChatRateGateOptions {
  /** The longest one 429 closes a chat's gate (a `retry_after` above it is cut to it), ms. */
  maxRetryAfterMs: number;
  /** The longest an op waits (its chat's `retry_after` and the ops queued ahead), ms. */
  waitBudgetMs: number;
  /** Seconds to wait when `err` is a 429, else undefined (the error is the op's own). */
  retryAfterOf: (err: unknown) => number | undefined;
  /** Monotonic clock, ms (tests pass a fake one). */
  now?: () => number;
  /** A 429 closed a chat's gate for `waitMs` (Telegram said `retryAfterSeconds`). */
  onClose?: (chatId: string, retryAfterSeconds: number, waitMs: number) => void;
}

interface GateWaiter {
  seq: number;
  deadline: number;
  go: (turn: boolean) => void;
  timer: NodeJS.Timeout | undefined;
}

/** One op of several calls on one chat ({@link ChatRateGates.hold}): its place, budget and turn. */
interface HeldOp {
  chatId: string;
  seq: number;
  deadline: number;
  /** The gate whose turn the op holds between its calls, if it had to wait for one. */
  holding: Gate | undefined;
}

interface Gate {
  chatId: string;
  /** Nothing for this chat is sent before this time. */
  openAt: number;
  /** Ops waiting for their turn, in arrival order. */
  waiting: GateWaiter[];
  /** One op of the queue is being sent: the next waits for its outcome, so order is kept. */
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
}

/**
 * Per-chat outbound gates for Telegram's flood control. While a chat has no gate its ops run side
 * by side, as they come. A 429 (`retry_after`) for the chat closes its gate: the op that got it and
 * every later op of that chat wait, in arrival order, and once the gate opens they are sent one at
 * a time in that order (the first asks Telegram again; a new 429 closes the gate again). Other chats
 * and the long poll never wait for it. An op that could not be sent within its wait budget is
 * refused at once with {@link ChatRateLimited} instead of being sent after its caller gave up. A 429
 * means Telegram did not take the request, so the op is retried; every other error is the op's own.
 *
 * Memory: a chat has a gate only while it is closed, has ops waiting, or is sending one; a gate
 * that is open and idle is dropped.
 */
export class ChatRateGates {
  private readonly gates = new Map<string, Gate>();
  private readonly now: () => number;
  private readonly held = new AsyncLocalStorage<HeldOp>();
  private seq = 0;

  constructor(private readonly options: ChatRateGateOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Chats that have a gate (closed, queued or sending). */
  get size(): number {
    return this.gates.size;
  }

  /** True while `chatId` must not be sent to. */
  isClosed(chatId: string): boolean {
    const gate = this.gates.get(chatId);
    return gate !== undefined && gate.openAt > this.now();
  }

  /**
   * Run `work` — several {@link run} calls for `chatId`, e.g. the parts of a long text — as one op:
   * the calls share one place in the chat's queue and one wait budget, and a turn won by one call
   * is kept until the last, so no other op of the chat lands between them.
   */
  async hold<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    const op: HeldOp = {
      chatId,
      seq: ++this.seq,
      deadline: this.now() + this.options.waitBudgetMs,
      holding: undefined,
    };
    try {
      return await this.held.run(op, work);
    } finally {
      if (op.holding) this.release(op.holding);
    }
  }

  /** Run `attempt` for `chatId` through its gate; see the class comment. */
  async run<T>(chatId: string, attempt: () => Promise<T>): Promise<T> {
    const store = this.held.getStore();
    const op = store?.chatId === chatId ? store : undefined;
    const seq = op?.seq ?? ++this.seq;
    const deadline = op?.deadline ?? this.now() + this.options.waitBudgetMs;
    let holding = op?.holding;
    const hold = (gate: Gate | undefined) => {
      holding = gate;
      if (op) op.holding = gate;
    };
    try {
      for (;;) {
        const gate = this.gates.get(chatId);
        if (gate && !holding) {
          if (!(await this.turn(gate, seq, deadline))) throw this.limited(gate);
          hold(gate);
        }
        try {
          return await attempt();
        } catch (err) {
          const seconds = this.options.retryAfterOf(err);
          if (seconds === undefined) throw err;
          const closed = this.close(chatId, seconds);
          if (holding) {
            const released = holding;
            hold(undefined);
            this.release(released);
          }
          if (closed.openAt > deadline) throw this.limited(closed);
        }
      }
    } finally {
      // A held op keeps its turn for its next call; `hold` releases it after the last.
      if (holding && !op) this.release(holding);
    }
  }

  /**
   * Record a 429 for `chatId` seen outside {@link run} (nothing waits for it). Returns true when
   * `err` was one.
   */
  note(chatId: string, err: unknown): boolean {
    const seconds = this.options.retryAfterOf(err);
    if (seconds === undefined) return false;
    this.close(chatId, seconds);
    return true;
  }

  private close(chatId: string, seconds: number): Gate {
    const now = this.now();
    const waitMs = Math.min(seconds * 1000, this.options.maxRetryAfterMs);
    let gate = this.gates.get(chatId);
    if (!gate) {
      gate = { chatId, openAt: now, waiting: [], busy: false, timer: undefined, timerAt: 0 };
      this.gates.set(chatId, gate);
    }
    gate.openAt = Math.max(gate.openAt, now + waitMs);
    this.options.onClose?.(chatId, seconds, waitMs);
    // Those that cannot be sent in time are told so now rather than when their budget runs out.
    for (const waiter of gate.waiting.filter((w) => w.deadline < gate.openAt)) this.drop(gate, waiter);
    this.pump(gate);
    return gate;
  }

  /** Wait for this op's turn in `gate`: true to go, false when its budget ran out first. */
  private turn(gate: Gate, seq: number, deadline: number): Promise<boolean> {
    if (gate.openAt > deadline || this.now() >= deadline) return Promise.resolve(false);
    return new Promise((go) => {
      const waiter: GateWaiter = { seq, deadline, go, timer: undefined };
      const at = gate.waiting.findIndex((other) => other.seq > seq);
      gate.waiting.splice(at < 0 ? gate.waiting.length : at, 0, waiter);
      waiter.timer = setTimeout(() => this.drop(gate, waiter), Math.max(0, deadline - this.now()));
      waiter.timer.unref();
      this.pump(gate);
    });
  }

  private drop(gate: Gate, waiter: GateWaiter): void {
    const index = gate.waiting.indexOf(waiter);
    if (index < 0) return;
    gate.waiting.splice(index, 1);
    clearTimeout(waiter.timer);
    waiter.go(false);
    this.pump(gate);
  }

  private release(gate: Gate): void {
    gate.busy = false;
    this.pump(gate);
  }

  /** Let the next op go when the gate is open and nobody is sending; drop the gate when idle. */
  private pump(gate: Gate): void {
    if (gate.busy) return;
    const now = this.now();
    if (gate.openAt > now) {
      if (gate.timer && gate.timerAt === gate.openAt) return;
      clearTimeout(gate.timer);
      gate.timerAt = gate.openAt;
      gate.timer = setTimeout(
        () => {
          gate.timer = undefined;
          this.pump(gate);
        },
        Math.max(1, gate.openAt - now),
      );
      gate.timer.unref();
      return;
    }
    clearTimeout(gate.timer);
    gate.timer = undefined;
    const next = gate.waiting.shift();
    if (!next) {
      if (this.gates.get(gate.chatId) === gate) this.gates.delete(gate.chatId);
      return;
    }
    clearTimeout(next.timer);
    gate.busy = true;
    next.go(true);
  }

  private limited(gate: Gate): ChatRateLimited {
    return new ChatRateLimited(Math.max(1, Math.ceil((gate.openAt - this.now()) / 1000)));
  }
}

export class TelegramAdapter implements PlatformAdapter {
  readonly name = 'telegram';

  private readonly api: Api;
  private readonly log: Logger;
  private readonly token: string;
  private readonly apiRoot: string;
  private readonly pollTimeoutSeconds: number;
  private readonly backoff: { initialMs: number; maxMs: number };

  private context: PlatformContext | undefined;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private pollState: TelegramPollingState = 'idle';
  /** Next update id wanted; everything below it has been ingested (or skipped on purpose). */
  private offset: number | undefined;
  /** The offset Telegram last saw in a `getUpdates` call: updates below it are confirmed there. */
  private confirmedOffset: number | undefined;
  /** Names the bot in dedupe keys: its numeric id, never the token. */
  private readonly botKey: string;
  /** Chats already told they have no route (and logged once). */
  private readonly noticedChats = new Set<string>();
  /** Per-chat flood control: a 429 for one chat holds that chat's ops only. */
  private readonly gates: ChatRateGates;

  constructor(options: TelegramAdapterOptions) {
    this.token = options.token;
    this.botKey = botKey(options.token);
    this.log = options.log.child({ platform: 'telegram' });
    this.pollTimeoutSeconds = Math.max(
      0,
      Math.floor(options.pollTimeoutSeconds ?? DEFAULT_POLL_TIMEOUT_SECONDS),
    );
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.gates = new ChatRateGates({
      maxRetryAfterMs: (options.maxRetryAfterSeconds ?? DEFAULT_TELEGRAM_MAX_RETRY_AFTER_SECONDS) * 1000,
      waitBudgetMs: options.opWaitBudgetMs ?? OP_WAIT_BUDGET_MS,
      retryAfterOf: telegramRetryAfter,
      onClose: (chatId, retryAfterSeconds, waitMs) =>
        this.log.warn(
          { chatId, retryAfterSeconds, waitSeconds: Math.ceil(waitMs / 1000) },
          'telegram rate limit (429) for a chat: its ops wait, other chats and polling go on',
        ),
    });
    const apiRoot = (options.apiRoot || TELEGRAM_DEFAULT_API_ROOT).replace(/\/+$/, '');
    this.apiRoot = apiRoot;
    this.api = new Api(options.token, {
      apiRoot,
      // Above the long-poll timeout so a healthy idle poll is never cut short by the client.
      timeoutSeconds: Math.max(30, this.pollTimeoutSeconds + 15),
    });
  }

  descriptor(): Omit<CapabilityDescriptor, 'supported_ops'> {
    return {
      contract_version: CONTRACT_VERSION,
      platform: 'telegram',
      label: 'Telegram',
      max_message_length: 4096,
      supports_draft_streaming: false,
      supports_edit: true,
      supports_threads: true,
      markdown_dialect: 'markdown_v2',
      len_unit: 'utf16',
      emoji: '\u2708\uFE0F',
      platform_hint:
        'You are chatting on Telegram. Replies are rendered as Telegram MarkdownV2: escape the characters ' +
        '_ * [ ] ( ) ~ ` > # + - = | { } . ! with a backslash outside formatting.',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    };
  }

  /** One instance of a cluster polls a bot at a time; the lease is named after the bot, not its token. */
  exclusiveLease(): string {
    return botLeaseName('telegram', this.token);
  }

  /** `polling` while the loop runs; `unauthorized` after Telegram refused the token. */
  get state(): TelegramPollingState {
    return this.pollState;
  }

  /** Resolves when the polling loop has ended (after `stop()`, or on its own after a 401). */
  pollingEnded(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  async start(context: PlatformContext): Promise<void> {
    if (this.loop) return;
    this.context = context;
    const controller = new AbortController();
    this.controller = controller;
    this.pollState = 'polling';
    this.log.info({ pollTimeoutSeconds: this.pollTimeoutSeconds }, 'telegram long polling started');
    this.loop = this.poll(controller.signal).catch((err: unknown) => {
      // The loop handles its own errors; this is a last line so the process never crashes here.
      this.pollState = 'stopped';
      this.log.error({ err: this.describe(err) }, 'telegram polling loop failed');
    });
  }

  async stop(): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.controller?.abort();
    await loop;
    this.loop = undefined;
    if (this.pollState === 'polling') this.pollState = 'stopped';
    await this.confirmOffset();
    this.log.info('telegram long polling stopped');
  }

  asOneOp<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    return this.gates.hold(chatId, work);
  }

  async send(action: SendAction): Promise<OutboundResult> {
    const replyTo = integerId(action.reply_to);
    const threadId = threadIdFrom(action.metadata);
    const base = {
      ...(replyTo !== undefined
        ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
        : {}),
      ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
    };
    try {
      const sent = await this.gates.run(action.chat_id, () =>
        this.withPlainFallback('sendMessage', action.chat_id, (markdown) =>
          this.api.sendMessage(
            action.chat_id,
            action.content,
            markdown ? { ...base, parse_mode: 'MarkdownV2' } : base,
          ),
        ),
      );
      return { success: true, message_id: String(sent.message_id) };
    } catch (err) {
      return this.failure('send', err, { ambiguous: mayHaveReachedTelegram(err) });
    }
  }

  /**
   * A file as a photo, voice note, audio, video or document: a re-host is uploaded (so private
   * files work), a public https URL is handed to Telegram to fetch. The caption is plain text.
   */
  async sendMedia(action: SendMediaAction): Promise<OutboundResult> {
    const replyTo = integerId(action.reply_to);
    const threadId = threadIdFrom(action.metadata);
    const other = {
      ...(action.content ? { caption: action.content } : {}),
      ...(replyTo !== undefined
        ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
        : {}),
      ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
    };
    const rehostId = mediaIdFromUrl(action.source_url);
    let file: InputFile | string = action.source_url;
    if (rehostId) {
      const found = this.context?.openMedia?.(rehostId);
      if (!found) return failedResult('no such media (expired, or never uploaded by this tenant)');
      // A supplier: each attempt (another after a 429) reads the file anew.
      file = new InputFile(() => found.stream(), action.filename || found.meta.filename || undefined);
    }
    try {
      const chat = action.chat_id;
      const sent = await this.gates.run<Message>(chat, () =>
        action.media_kind === 'image'
          ? this.api.sendPhoto(chat, file, other)
          : action.media_kind === 'voice'
            ? this.api.sendVoice(chat, file, other)
            : action.media_kind === 'audio'
              ? this.api.sendAudio(chat, file, other)
              : action.media_kind === 'video'
                ? this.api.sendVideo(chat, file, other)
                : this.api.sendDocument(chat, file, other),
      );
      return { success: true, message_id: String(sent.message_id) };
    } catch (err) {
      return this.failure('send_media', err, { ambiguous: mayHaveReachedTelegram(err) });
    }
  }

  /** One button per option, each carrying its callback token (≤ 64 bytes, current §7.4). */
  async prompt(action: PromptAction): Promise<OutboundResult> {
    const keyboard: { text: string; callback_data: string }[][] = [];
    for (const option of action.options) {
      const token = encodePromptToken(action.prompt_id, option.id);
      if (!token)
        return failedResult(
          `prompt_id and option ids must make a callback token of at most 64 bytes (hp1:<prompt_id>:<option_id>); option ${JSON.stringify(option.id)} does not`,
        );
      keyboard.push([{ text: option.label, callback_data: token }]);
    }
    const replyTo = integerId(action.reply_to);
    const threadId = threadIdFrom(action.metadata);
    try {
      const sent = await this.gates.run(action.chat_id, () =>
        this.api.sendMessage(action.chat_id, action.content, {
          reply_markup: { inline_keyboard: keyboard },
          ...(replyTo !== undefined
            ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
            : {}),
          ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
        }),
      );
      return { success: true, message_id: String(sent.message_id) };
    } catch (err) {
      return this.failure('prompt', err, { ambiguous: mayHaveReachedTelegram(err) });
    }
  }

  /** `setMessageReaction`; an empty set removes (Telegram accepts only its own emoji list). */
  async react(action: ReactAction): Promise<OutboundResult> {
    const messageId = integerId(action.message_id);
    if (messageId === undefined)
      return failedResult(`telegram message ids are integers, got ${JSON.stringify(action.message_id)}`);
    try {
      await this.gates.run(action.chat_id, () =>
        this.api.setMessageReaction(
          action.chat_id,
          messageId,
          action.remove ? [] : [{ type: 'emoji', emoji: action.emoji as ReactionTypeEmoji['emoji'] }],
        ),
      );
      return { success: true };
    } catch (err) {
      return this.failure('react', err);
    }
  }

  /** A forum topic (current §7.6): only in chats that are forums; Telegram says so otherwise. */
  async createThread(action: ThreadCreateAction): Promise<OutboundResult> {
    try {
      const topic = await this.gates.run(action.chat_id, () =>
        this.api.createForumTopic(action.chat_id, action.thread_name),
      );
      return { success: true, thread_id: String(topic.message_thread_id) };
    } catch (err) {
      return this.failure('thread_create', err, { ambiguous: mayHaveReachedTelegram(err) });
    }
  }

  /**
   * `editForumTopic`. Telegram cannot read a topic's current name, so a guarded rename
   * (`only_if_current_name`, `only_if_connector_created`) cannot be checked: it fails safe.
   */
  async renameThread(action: ThreadRenameAction): Promise<OutboundResult> {
    if (action.only_if_current_name !== undefined || action.only_if_connector_created === true)
      return failedResult('telegram cannot check a topic’s current name; a guarded rename is not applied');
    const threadId = integerId(action.message_id);
    if (threadId === undefined)
      return failedResult(`telegram topic ids are integers, got ${JSON.stringify(action.message_id)}`);
    try {
      await this.gates.run(action.chat_id, () =>
        this.api.editForumTopic(action.chat_id, threadId, { name: action.thread_name }),
      );
      return { success: true };
    } catch (err) {
      return this.failure('thread_rename', err);
    }
  }

  async edit(action: EditAction): Promise<OutboundResult> {
    const messageId = integerId(action.message_id);
    if (messageId === undefined) {
      return failedResult(`telegram message ids are integers, got ${JSON.stringify(action.message_id)}`);
    }
    try {
      await this.gates.run(action.chat_id, () =>
        this.withPlainFallback('editMessageText', action.chat_id, (markdown) =>
          this.api.editMessageText(
            action.chat_id,
            messageId,
            action.content,
            markdown ? { parse_mode: 'MarkdownV2' } : {},
          ),
        ),
      );
      return { success: true, message_id: action.message_id };
    } catch (err) {
      if (isNotModified(err)) return { success: true, message_id: action.message_id };
      return this.failure('edit', err, { ambiguous: mayHaveReachedTelegram(err) });
    }
  }

  async typing(action: TypingAction): Promise<OutboundResult> {
    // Telegram has no "stop typing": the indicator ends by itself or with the next message.
    if (action.content === '') return { success: true };
    // `TypingAction` carries no metadata in the protocol schema; read a thread id if one was passed.
    const threadId = threadIdFrom((action as { metadata?: Record<string, unknown> }).metadata);
    try {
      await this.gates.run(action.chat_id, () =>
        this.api.sendChatAction(
          action.chat_id,
          'typing',
          threadId !== undefined ? { message_thread_id: threadId } : {},
        ),
      );
      return { success: true };
    } catch (err) {
      return this.failure('typing', err);
    }
  }

  async getChatInfo(action: GetChatInfoAction): Promise<OutboundResult> {
    try {
      const chat = await this.gates.run(action.chat_id, () => this.api.getChat(action.chat_id));
      const name =
        ('title' in chat ? chat.title : undefined) ||
        personName(chat as { first_name?: string; last_name?: string }) ||
        ('username' in chat ? chat.username : undefined) ||
        action.chat_id;
      // A forum supergroup is a forum as a whole, even though its General topic has no thread id.
      const type = chat.type === 'supergroup' && chat.is_forum ? 'forum' : telegramChatType(chat);
      return { success: true, chat_info: { name, type } };
    } catch (err) {
      return this.failure('get_chat_info', err);
    }
  }

  // --- polling -------------------------------------------------------------------------------------

  private async poll(signal: AbortSignal): Promise<void> {
    let networkFailures = 0;
    let storeFailures = 0;
    batches: while (!signal.aborted) {
      let updates: Update[];
      const offset = this.offset;
      try {
        updates = await this.api.getUpdates(
          {
            ...(offset !== undefined ? { offset } : {}),
            timeout: this.pollTimeoutSeconds,
            allowed_updates: [...ALLOWED_UPDATES],
          },
          grammySignal(signal),
        );
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof GrammyError && (err.error_code === 401 || err.error_code === 404)) {
          this.pollState = 'unauthorized';
          this.log.error(
            { status: err.error_code },
            err.error_code === 401
              ? 'Telegram rejected the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN. Telegram polling has stopped.'
              : 'Telegram answered 404 for getUpdates: the bot token is malformed or TELEGRAM_API_ROOT is wrong. Telegram polling has stopped.',
          );
          return;
        }
        networkFailures += 1;
        const delay = this.retryDelay(err, networkFailures);
        if (err instanceof GrammyError && err.error_code === 409) {
          this.log.warn(
            { err: this.describe(err), retryInMs: delay },
            'telegram getUpdates conflict: another process polls this bot or a webhook is set',
          );
        } else {
          this.log.warn(
            { err: this.describe(err), retryInMs: delay },
            'telegram getUpdates failed; retrying',
          );
        }
        await pause(delay, signal);
        continue;
      }
      networkFailures = 0;
      this.confirmedOffset = offset;

      for (const update of updates) {
        if (signal.aborted) return;
        if (this.offset !== undefined && update.update_id < this.offset) continue;
        const handled = await this.handle(update);
        if (!handled) {
          storeFailures += 1;
          const delay = this.backoffDelay(storeFailures);
          this.log.warn(
            { updateId: update.update_id, retryInMs: delay },
            'telegram update not stored; it will be fetched again',
          );
          await pause(delay, signal);
          continue batches;
        }
        storeFailures = 0;
        this.offset = update.update_id + 1;
      }
    }
  }

  /** True when the update may be acknowledged: ingested, deliberately skipped, or unroutable. */
  private async handle(update: Update): Promise<boolean> {
    const handled = await this.handleUpdate(update);
    // A pressed button spins until answered: answer it (best effort) once the press is queued or
    // dropped as foreign, whatever the agent does with it later.
    const query = update.callback_query;
    if (handled && query)
      await this.api.answerCallbackQuery(query.id).catch((err: unknown) => {
        this.log.debug({ err: this.describe(err) }, 'callback query not answered');
      });
    return handled;
  }

  private async handleUpdate(update: Update): Promise<boolean> {
    const context = this.context;
    if (!context) return false;
    let inbound: ReturnType<typeof normaliseTelegramUpdate>;
    try {
      inbound = normaliseTelegramUpdate(update, integerId(this.token.split(':', 1)[0]));
    } catch (err) {
      this.log.error(
        { updateId: update.update_id, err: this.describe(err) },
        'telegram update not understood; skipped',
      );
      return true;
    }
    if (!inbound) {
      this.log.debug(
        { updateId: update.update_id },
        update.callback_query
          ? 'telegram button press with a foreign payload skipped'
          : 'telegram update without text or file skipped',
      );
      return true;
    }
    const { files, ...routed } = inbound;
    // An update queued but not yet confirmed to Telegram (the offset) when this poller died is
    // fetched again by the next one, here or on another instance: its id makes it one event.
    const keyed: PlatformInbound = {
      ...routed,
      dedupeKey: `telegram:${this.botKey}:update:${update.update_id}`,
    };
    let outcome: Awaited<ReturnType<PlatformContext['ingest']>>;
    try {
      outcome = await context.ingest(
        files.length ? { ...keyed, attachments: files.map((file) => this.attachment(file)) } : keyed,
      );
    } catch (err) {
      this.log.warn({ updateId: update.update_id, err: this.describe(err) }, 'telegram ingest threw');
      return false;
    }
    if (outcome.ok) return true;
    // Not for the agent under its gateway's policy, or nothing deliverable: handled, no retry.
    if (outcome.reason === 'irrelevant' || outcome.reason === 'duplicate') return true;
    if (outcome.reason === 'unsupported') {
      this.log.warn({ updateId: update.update_id, err: outcome.message }, 'telegram update not delivered');
      return true;
    }
    if (outcome.reason === 'no_route') {
      await this.noticeNoRoute(inbound);
      return true;
    }
    this.log.warn(
      { updateId: update.update_id, err: this.redact(outcome.message) },
      'telegram ingest failed',
    );
    return false;
  }

  /** Fetched only when routed: `getFile`, then the download, whose URL holds the token. */
  private attachment(file: TelegramFile): InboundAttachment {
    const { fileId, ...described } = file;
    return {
      ...described,
      open: async () => {
        try {
          const info = await this.api.getFile(fileId);
          if (!info.file_path) throw new Error('Telegram returned no file path');
          const response = await fetch(`${this.apiRoot}/file/bot${this.token}/${info.file_path}`, {
            signal: AbortSignal.timeout(FILE_DOWNLOAD_TIMEOUT_MS),
          });
          if (!response.ok || !response.body)
            throw new Error(`file download answered HTTP ${response.status}`);
          return Readable.fromWeb(response.body as WebReadableStream);
        } catch (error) {
          throw new Error(`telegram file not fetched: ${this.describe(error)}`);
        }
      },
    };
  }

  private async noticeNoRoute(inbound: PlatformInbound): Promise<void> {
    const chatId = inbound.routeKey;
    if (this.noticedChats.has(chatId)) return;
    this.noticedChats.add(chatId);
    this.log.warn(
      { chatId, chatType: inbound.event.source.chat_type },
      'telegram chat has no route to a tenant; add one with `hermes connector route add --platform telegram`',
    );
    const threadId = integerId(inbound.event.source.thread_id);
    // Sent from the polling loop, which never waits for a chat's rate limit: skipped while it lasts.
    if (this.gates.isClosed(chatId)) return;
    try {
      await this.api.sendMessage(
        chatId,
        TELEGRAM_NO_ROUTE_NOTICE,
        threadId !== undefined ? { message_thread_id: threadId } : {},
      );
    } catch (err) {
      this.gates.note(chatId, err);
      this.log.warn({ chatId, err: this.describe(err) }, 'telegram no-route notice not sent');
    }
  }

  /** Tell Telegram about updates handled since the last poll, so a restart does not repeat them. */
  private async confirmOffset(): Promise<void> {
    if (this.pollState === 'unauthorized') return;
    const offset = this.offset;
    if (offset === undefined || offset === this.confirmedOffset) return;
    try {
      await this.api.getUpdates(
        { offset, limit: 1, timeout: 0 },
        grammySignal(AbortSignal.timeout(CONFIRM_TIMEOUT_MS)),
      );
      this.confirmedOffset = offset;
    } catch (err) {
      this.log.warn({ err: this.describe(err) }, 'telegram offset not confirmed; some updates may repeat');
    }
  }

  private backoffDelay(failures: number): number {
    return backoffDelay(failures, {
      baseMs: this.backoff.initialMs,
      capMs: this.backoff.maxMs,
      jitter: 'none',
    });
  }

  /** Telegram's `retry_after` on 429 wins over the exponential backoff. */
  private retryDelay(err: unknown, failures: number): number {
    if (err instanceof GrammyError && err.error_code === 429) {
      const seconds = err.parameters.retry_after;
      if (typeof seconds === 'number' && seconds >= 0) return Math.min(seconds * 1000, 300_000);
    }
    return this.backoffDelay(failures);
  }

  // --- outbound helpers ----------------------------------------------------------------------------

  /** Run a call as MarkdownV2; if Telegram cannot parse the entities, run it once more as plain text. */
  private async withPlainFallback<T>(
    method: string,
    chatId: string,
    call: (markdown: boolean) => Promise<T>,
  ): Promise<T> {
    try {
      return await call(true);
    } catch (err) {
      if (!isParseEntitiesError(err)) throw err;
      this.log.debug(
        { method, chatId, err: this.describe(err) },
        'telegram MarkdownV2 rejected; sending plain text',
      );
      return await call(false);
    }
  }

  private failure(op: string, err: unknown, extra: { ambiguous?: boolean } = {}): OutboundResult {
    // Held back for the chat's flood control: never sent, so never ambiguous.
    if (err instanceof ChatRateLimited) {
      this.log.warn({ op, retryAfterSeconds: err.retryAfterSeconds }, 'telegram outbound op rate limited');
      return rateLimitedResult(err);
    }
    const error = this.describe(err);
    this.log.warn({ op, err: error }, 'telegram outbound op failed');
    return failedResult(error, extra.ambiguous ? { ambiguous: true } : {});
  }

  /** A loggable one-line description of an error, with the bot token removed. */
  private describe(err: unknown): string {
    if (err instanceof GrammyError)
      return this.redact(`telegram ${err.method}: ${err.error_code} ${err.description}`);
    if (err instanceof HttpError) {
      const inner = err.error instanceof Error ? `: ${err.error.message}` : '';
      return this.redact(`${err.message}${inner}`);
    }
    if (err instanceof Error) return this.redact(err.message);
    return this.redact(String(err));
  }

  private redact(text: string): string {
    return redact(text, [this.token]);
  }
}
