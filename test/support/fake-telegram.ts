import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { startFakeServer } from './fake-server.js';

/**
 * A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api), on 127.0.0.1 at a
 * random port. It speaks the real HTTP shape: `POST /bot<token>/<method>` with a JSON body (what
 * grammY sends; url-encoded forms and query strings also work), answered `{ok:true,result}` or
 * `{ok:false,error_code,description[,parameters]}` with the error code as the HTTP status.
 *
 * Flood control: `rateLimitChat` answers one chat's calls 429 with `parameters.retry_after`.
 *
 * Implemented: getMe, getUpdates (long polling with offset confirmation, like Telegram),
 * sendMessage, editMessageText, sendChatAction, getChat. MarkdownV2 is checked roughly the way
 * Telegram checks it (reserved characters must be escaped, entities must be closed), so a reply
 * like `Hello!` is refused with "can't parse entities" just as the real server refuses it.
 * Multipart uploads are not supported.
 */

export interface FakeChat {
  id: number;
  type: 'private' | 'group' | 'supergroup' | 'channel';
  title?: string;
  username?: string;
  first_name?: string;
  last_name?: string;
  is_forum?: true;
}

export interface FakeUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  last_name?: string;
  username?: string;
}

/** An incoming message as a test writes it; `message_id` and `date` are filled in when absent. */
export interface FakeIncomingMessage {
  message_id?: number;
  date?: number;
  chat: FakeChat;
  from?: FakeUser;
  text?: string;
  caption?: string;
  message_thread_id?: number;
  is_topic_message?: true;
  reply_to_message?: Record<string, unknown> & { message_id: number };
  [field: string]: unknown;
}

export interface FakeUpdateInput {
  update_id?: number;
  message?: FakeIncomingMessage;
  edited_message?: FakeIncomingMessage;
  [field: string]: unknown;
}

export interface FakeUpdate extends FakeUpdateInput {
  update_id: number;
}

export interface FakeCall {
  method: string;
  params: Record<string, unknown>;
  /** HTTP status the fake answered with (200, 400, 401, …); 0 when the connection was dropped. */
  status: number;
  /** When it arrived (`performance.now()` of the test process). */
  at: number;
}

/** A chat under flood control: see {@link FakeTelegram.rateLimitChat}. */
interface ChatFlood {
  /** Fixed `retry_after`; unset: the seconds left until `until`. */
  retryAfter?: number;
  /** Calls still to refuse; unset: every call until `until` or `clearRateLimit`. */
  calls?: number;
  /** `performance.now()` at which the flood ends; unset: never by itself. */
  until?: number;
}

/** A message the bot sent, with edits applied. */
export interface FakeSentMessage {
  message_id: number;
  chat_id: string;
  text: string;
  /** `reply_markup` as sent (inline keyboards of prompts). */
  reply_markup?: unknown;
  /** Emoji set on it by `setMessageReaction` (empty after a removal). */
  reactions?: string[];
  /** sendPhoto / sendVoice / sendAudio / sendVideo / sendDocument: the file, uploaded or by URL. */
  media?: { method: string; bytes?: Buffer; filename?: string; url?: string; caption?: string };
  parse_mode?: string;
  message_thread_id?: number;
  reply_to_message_id?: number;
  /** How many successful `editMessageText` calls changed it. */
  edits: number;
}

type Injected =
  | { kind: 'error'; code: number; description: string; parameters?: Record<string, unknown> }
  | { kind: 'drop' };

type Answer =
  | { ok: true; result: unknown }
  | { ok: false; error_code: number; description: string; parameters?: Record<string, unknown> };

interface PendingPoll {
  answer: (answer: Answer) => void;
  params: Record<string, unknown>;
  timer: NodeJS.Timeout;
}

const CHAT_ACTIONS = new Set([
  'typing',
  'upload_photo',
  'record_video',
  'upload_video',
  'record_voice',
  'upload_voice',
  'upload_document',
  'choose_sticker',
  'find_location',
  'record_video_note',
  'upload_video_note',
]);

const ENTITY_NAMES: Record<string, string> = {
  '*': 'Bold',
  _: 'Italic',
  __: 'Underline',
  '~': 'Strikethrough',
  '||': 'Spoiler',
};
const RESERVED = new Set('_*[]()~`>#+-=|{}.!');

/**
 * Why Telegram would refuse `text` as MarkdownV2, or `undefined` when it would accept it. A close
 * approximation of the Bot API's parser: escapes, code spans and blocks, links, nested
 * bold/italic/underline/strike/spoiler markers, blockquote `>` at the start of a line.
 */
export function markdownV2Error(text: string): string | undefined {
  const open = new Map<string, number>();
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    const lineStart = i === 0 || text[i - 1] === '\n';
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (text.startsWith('```', i)) {
      const end = text.indexOf('```', i + 3);
      if (end < 0) return `Can't find end of Pre entity at byte offset ${i}`;
      i = end + 3;
      continue;
    }
    if (ch === '`') {
      const end = text.indexOf('`', i + 1);
      if (end < 0) return `Can't find end of Code entity at byte offset ${i}`;
      i = end + 1;
      continue;
    }
    if (ch === '[') {
      const link = /^\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^)\\])*)\)/s.exec(text.slice(i));
      if (!link) return `Character '[' is reserved and must be escaped with the preceding '\\'`;
      const inner = markdownV2Error(link[1] ?? '');
      if (inner) return inner;
      i += link[0].length;
      continue;
    }
    if (ch === '>' && lineStart) {
      i += 1;
      continue;
    }
    const marker = text.startsWith('__', i)
      ? '__'
      : text.startsWith('||', i)
        ? '||'
        : ch === '*' || ch === '_' || ch === '~'
          ? ch
          : undefined;
    if (marker) {
      if (open.has(marker)) open.delete(marker);
      else open.set(marker, i);
      i += marker.length;
      continue;
    }
    if (RESERVED.has(ch)) return `Character '${ch}' is reserved and must be escaped with the preceding '\\'`;
    i += 1;
  }
  for (const [marker, at] of open)
    return `Can't find end of ${ENTITY_NAMES[marker]} entity at byte offset ${at}`;
  return undefined;
}

function jsonish(value: string): unknown {
  const trimmed = value.trim();
  if (/^[[{]/.test(trimmed) || /^-?\d+$/.test(trimmed) || trimmed === 'true' || trimmed === 'false') {
    try {
      return JSON.parse(trimmed);
    } catch {
      return value;
    }
  }
  return value;
}

function toInt(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

/**
 * multipart/form-data as Telegram reads it: tolerant of headers without a space after the colon,
 * which grammY writes (and which stricter parsers, undici's included, refuse).
 */
function parseMultipart(
  raw: Buffer,
  boundary: string,
): { name: string; filename?: string; bytes: Buffer }[] | undefined {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { name: string; filename?: string; bytes: Buffer }[] = [];
  let at = raw.indexOf(delimiter);
  if (at < 0) return undefined;
  for (;;) {
    const start = at + delimiter.length;
    if (raw.subarray(start, start + 2).toString() === '--') return parts;
    const next = raw.indexOf(delimiter, start);
    if (next < 0) return undefined;
    const part = raw.subarray(start + 2, next - 2); // after CRLF, before the CRLF of the delimiter
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) return undefined;
    const headers = part.subarray(0, split).toString('utf8');
    // Quoted or bare values (grammY writes `filename=a.png`).
    const param = (key: string) => {
      const match = new RegExp(`(?:^|[;\\s])${key}\\s*=\\s*(?:"([^"]*)"|([^;\\r\\n]*))`, 'i').exec(headers);
      return match ? (match[1] ?? match[2]?.trim()) : undefined;
    };
    const name = param('name');
    const filename = param('filename');
    if (name === undefined) return undefined;
    parts.push({ name, ...(filename !== undefined ? { filename } : {}), bytes: part.subarray(split + 4) });
    at = next;
  }
}

/** Part of Telegram's allowed reaction emoji (https://core.telegram.org/bots/api#reactiontypeemoji). */
const TELEGRAM_REACTIONS = new Set(['👍', '👎', '❤', '🔥', '🎉', '👀', '🤔', '👌', '🙏', '😁']);

const bad = (description: string): Answer => ({
  ok: false,
  error_code: 400,
  description: `Bad Request: ${description}`,
});

export class FakeTelegram {
  readonly token: string;
  readonly apiRoot: string;
  /** Every request, in arrival order (recorded before a long poll waits). */
  readonly calls: FakeCall[] = [];
  /** Messages the bot sent, per chat id (as a string), with edits applied. */
  readonly messages = new Map<string, FakeSentMessage[]>();
  readonly bot: FakeUser;

  private readonly server: Server;
  private readonly chats = new Map<string, FakeChat>();
  private readonly knownMessageIds = new Map<string, Set<number>>();
  private readonly lastMessageId = new Map<string, number>();
  private queue: FakeUpdate[] = [];
  private nextUpdateId = 1;
  private pendingPoll: PendingPoll | undefined;
  private readonly injected = new Map<string, Injected[]>();
  /** file_id → path and bytes, served at `/file/bot<token>/<path>` after `getFile`. */
  private readonly files = new Map<string, { path: string; bytes: Buffer }>();
  /** Reactions set on any known message (sent or received), by `<chat>:<message id>`. */
  readonly reactions = new Map<string, string[]>();
  /** Downloads of `/file/bot…` paths, as (path, status). */
  readonly downloads: { path: string; status: number }[] = [];
  private readonly callWaiters: { check: () => boolean; resolve: () => void }[] = [];
  private readonly floods = new Map<string, ChatFlood>();
  private closed = false;

  private constructor(server: Server, token: string, apiRoot: string) {
    this.server = server;
    this.token = token;
    this.apiRoot = apiRoot;
    const botId = Number(token.split(':')[0]) || 1000;
    this.bot = { id: botId, is_bot: true, first_name: 'Fake Bot', username: 'fake_bot' };
  }

  static async start(options: { token?: string } = {}): Promise<FakeTelegram> {
    const token = options.token ?? '123456:TEST-token_abcdefghijklmnopqrstuvwxyz';
    return startFakeServer((server, port) => new FakeTelegram(server, token, `http://127.0.0.1:${port}`));
  }

  // --- test API ------------------------------------------------------------------------------------

  /** Make a chat known (sendMessage/getChat to an unknown chat fail with "chat not found"). */
  addChat(chat: FakeChat): void {
    const key = String(chat.id);
    this.chats.set(key, { ...this.chats.get(key), ...chat });
  }

  /**
   * Queue an update for getUpdates. `update_id` and the message's `message_id`/`date` are filled in
   * when absent; the chat becomes known. Returns the update as it will be served.
   */
  pushUpdate(input: FakeUpdateInput): FakeUpdate {
    const update: FakeUpdate = { ...input, update_id: input.update_id ?? this.nextUpdateId };
    this.nextUpdateId = Math.max(this.nextUpdateId, update.update_id + 1);
    for (const key of ['message', 'edited_message'] as const) {
      const message = update[key];
      if (!message) continue;
      const chatKey = String(message.chat.id);
      this.addChat(message.chat);
      const messageId = message.message_id ?? (key === 'message' ? this.newMessageId(chatKey) : undefined);
      if (messageId === undefined) throw new Error('an edited_message needs the message_id it edits');
      this.rememberMessageId(chatKey, messageId);
      update[key] = { date: Math.floor(Date.now() / 1000), ...message, message_id: messageId };
    }
    this.queue.push(update);
    this.wakePoll();
    return update;
  }

  /** A file users can send (a photo size, a voice note, a document): returns its `file_id`. */
  addFile(bytes: Buffer, extension = 'bin'): string {
    const fileId = `file-${this.files.size + 1}-${Math.random().toString(36).slice(2, 10)}`;
    this.files.set(fileId, { path: `documents/file_${this.files.size}.${extension}`, bytes });
    return fileId;
  }

  /** The next call to `method` fails with this Telegram error (queued; one per call). */
  failNext(method: string, code: number, description: string, parameters?: Record<string, unknown>): void {
    this.inject(method, { kind: 'error', code, description, ...(parameters ? { parameters } : {}) });
  }

  /**
   * Telegram's flood control for one chat: every call naming it as `chat_id` (sendMessage, edits,
   * media, typing, …) is answered `429 Too Many Requests: retry after N` with
   * `parameters.retry_after` N, other chats and getUpdates as usual. It lasts for the next `calls`
   * such calls, or for `forMs`, or until {@link clearRateLimit}. N is `retryAfter`, else the
   * seconds left of `forMs` (rounded up, as Telegram does), else 1.
   */
  rateLimitChat(
    chatId: number | string,
    options: { retryAfter?: number; calls?: number; forMs?: number } = {},
  ): void {
    this.floods.set(String(chatId), {
      ...(options.retryAfter !== undefined ? { retryAfter: options.retryAfter } : {}),
      ...(options.calls !== undefined ? { calls: options.calls } : {}),
      ...(options.forMs !== undefined ? { until: performance.now() + options.forMs } : {}),
    });
  }

  /** End a chat's flood control. */
  clearRateLimit(chatId: number | string): void {
    this.floods.delete(String(chatId));
  }

  /** Calls answered 429 for `chatId`. */
  rateLimitedCalls(chatId: number | string): FakeCall[] {
    return this.calls.filter((call) => call.status === 429 && String(call.params.chat_id) === String(chatId));
  }

  /** Resolves once `check()` holds, checked now and after every call. */
  waitUntil(check: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      if (check()) resolve();
      else this.callWaiters.push({ check, resolve });
    });
  }

  /** The next call to `method` gets its connection destroyed without an answer (a network error). */
  dropNext(method: string): void {
    this.inject(method, { kind: 'drop' });
  }

  callsTo(method: string): FakeCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** Resolves once at least `count` calls to `method` have arrived. */
  waitForCalls(method: string, count: number): Promise<FakeCall[]> {
    return new Promise((resolve) => {
      const check = () => this.callsTo(method).length >= count;
      const done = () => resolve(this.callsTo(method));
      if (check()) done();
      else this.callWaiters.push({ check, resolve: done });
    });
  }

  /** Updates still held (not yet confirmed by a getUpdates with a higher offset). */
  get pendingUpdates(): readonly FakeUpdate[] {
    return this.queue;
  }

  /** True while a getUpdates long poll is waiting for updates. */
  get pollPending(): boolean {
    return this.pendingPoll !== undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const poll = this.pendingPoll;
    this.pendingPoll = undefined;
    if (poll) {
      clearTimeout(poll.timer);
      poll.answer({ ok: true, result: [] });
    }
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closing;
  }

  // --- HTTP ----------------------------------------------------------------------------------------

  private inject(method: string, injected: Injected): void {
    const list = this.injected.get(method) ?? [];
    list.push(injected);
    this.injected.set(method, list);
  }

  /** The 429 for a call to a chat under flood control, or undefined. */
  private floodAnswer(params: Record<string, unknown>): Answer | undefined {
    if (params.chat_id === undefined) return undefined;
    const chatKey = String(params.chat_id);
    const flood = this.floods.get(chatKey);
    if (!flood) return undefined;
    const now = performance.now();
    if ((flood.until !== undefined && now >= flood.until) || flood.calls === 0) {
      this.floods.delete(chatKey);
      return undefined;
    }
    if (flood.calls !== undefined) flood.calls -= 1;
    const retryAfter =
      flood.retryAfter ??
      (flood.until !== undefined ? Math.max(1, Math.ceil((flood.until - now) / 1000)) : 1);
    return {
      ok: false,
      error_code: 429,
      description: `Too Many Requests: retry after ${retryAfter}`,
      parameters: { retry_after: retryAfter },
    };
  }

  private record(call: FakeCall): void {
    this.calls.push(call);
    for (let i = this.callWaiters.length - 1; i >= 0; i--) {
      const waiter = this.callWaiters[i];
      if (waiter?.check()) {
        this.callWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** Serves one request (called by the server from `startFakeServer`). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.apiRoot);
    const download = /^\/file\/bot([^/]*)\/(.+)$/.exec(url.pathname);
    if (download) {
      // The real file server: the token in the path, the bytes as the body, 404 otherwise.
      const file = [...this.files.values()].find((f) => f.path === download[2]);
      const status = download[1] !== this.token ? 401 : file ? 200 : 404;
      this.downloads.push({ path: download[2] ?? '', status });
      if (status !== 200 || !file) {
        this.send(res, {
          ok: false,
          error_code: status,
          description: status === 401 ? 'Unauthorized' : 'Not Found',
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.bytes.length });
      res.end(file.bytes);
      return;
    }
    const match = /^\/bot([^/]*)\/([A-Za-z]+)$/.exec(url.pathname);
    const params = await this.readParams(req, url);
    if (!match) {
      this.send(res, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    const [, token, method = ''] = match;
    if (params === undefined) {
      this.record({ method, params: {}, status: 400, at: performance.now() });
      this.send(res, bad('fake Telegram reads JSON and url-encoded bodies only'));
      return;
    }
    const call: FakeCall = { method, params, status: 0, at: performance.now() };
    const flooded = token === this.token ? this.floodAnswer(params) : undefined;
    // The status is known before waiters look at the call.
    if (flooded) call.status = 429;
    this.record(call);
    if (token !== this.token) {
      call.status = 401;
      this.send(res, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    if (flooded) {
      this.send(res, flooded);
      return;
    }
    const injected = this.injected.get(method)?.shift();
    if (injected?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (injected?.kind === 'error') {
      call.status = injected.code;
      this.send(res, {
        ok: false,
        error_code: injected.code,
        description: injected.description,
        ...(injected.parameters ? { parameters: injected.parameters } : {}),
      });
      return;
    }
    const answer =
      method === 'getUpdates' ? await this.getUpdates(params, res) : this.dispatch(method, params);
    if (!answer) return; // the client went away while long polling
    call.status = answer.ok ? 200 : answer.error_code;
    this.send(res, answer);
  }

  private async readParams(req: IncomingMessage, url: URL): Promise<Record<string, unknown> | undefined> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = raw.toString('utf8');
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    const params: Record<string, unknown> = {};
    for (const [key, value] of url.searchParams) params[key] = jsonish(value);
    if (body.length === 0) return params;
    if (type.includes('multipart/form-data')) {
      // Uploads (InputFile): files become { filename, bytes }; `attach://<name>` points at a part.
      const boundary = /boundary=("?)([^";]+)\1/i.exec(String(req.headers['content-type']))?.[2];
      const form = boundary ? parseMultipart(raw, boundary) : undefined;
      if (!form) return undefined;
      const parts = new Map<string, unknown>();
      for (const part of form)
        parts.set(
          part.name,
          part.filename === undefined
            ? jsonish(part.bytes.toString('utf8'))
            : { filename: part.filename, bytes: part.bytes },
        );
      for (const [key, value] of parts) {
        const attached =
          typeof value === 'string' && value.startsWith('attach://') ? parts.get(value.slice(9)) : undefined;
        params[key] = attached ?? value;
      }
      return params;
    }
    if (type.includes('application/json')) {
      try {
        const parsed: unknown = JSON.parse(body);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return { ...params, ...parsed };
      } catch {
        return undefined;
      }
      return undefined;
    }
    if (type.includes('application/x-www-form-urlencoded')) {
      for (const [key, value] of new URLSearchParams(body)) params[key] = jsonish(value);
      return params;
    }
    return undefined;
  }

  private send(res: ServerResponse, answer: Answer): void {
    if (res.writableEnded || res.destroyed) return;
    const body = JSON.stringify(answer);
    res.writeHead(answer.ok ? 200 : answer.error_code, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  // --- methods -------------------------------------------------------------------------------------

  private dispatch(method: string, params: Record<string, unknown>): Answer {
    switch (method) {
      case 'getMe':
        return {
          ok: true,
          result: { ...this.bot, can_join_groups: true, can_read_all_group_messages: false },
        };
      case 'sendMessage':
        return this.sendMessage(params);
      case 'editMessageText':
        return this.editMessageText(params);
      case 'sendChatAction':
        return this.sendChatAction(params);
      case 'getChat':
        return this.getChat(params);
      case 'answerCallbackQuery':
        return typeof params.callback_query_id === 'string' && params.callback_query_id
          ? { ok: true, result: true }
          : bad('query is too old and response timeout expired or query ID is invalid');
      case 'setMessageReaction':
        return this.setMessageReaction(params);
      case 'createForumTopic':
      case 'editForumTopic':
        return this.forumTopic(method, params);
      case 'sendPhoto':
      case 'sendVoice':
      case 'sendAudio':
      case 'sendVideo':
      case 'sendDocument':
        return this.sendFile(method, params);
      case 'getFile': {
        const fileId = String(params.file_id ?? '');
        const file = this.files.get(fileId);
        if (!file) return bad('invalid file_id');
        return {
          ok: true,
          result: {
            file_id: fileId,
            file_unique_id: `u${fileId}`,
            file_size: file.bytes.length,
            file_path: file.path,
          },
        };
      }
      default:
        return { ok: false, error_code: 404, description: 'Not Found' };
    }
  }

  /** Forget updates below the offset (they are confirmed), then answer at once or wait. */
  private getUpdates(params: Record<string, unknown>, res: ServerResponse): Promise<Answer | undefined> {
    const offset = toInt(params.offset);
    if (offset !== undefined && offset > 0) this.queue = this.queue.filter((u) => u.update_id >= offset);
    const ready = this.collect(params);
    const timeout = toInt(params.timeout) ?? 0;
    if (ready.length > 0 || timeout <= 0 || this.closed) return Promise.resolve({ ok: true, result: ready });

    // Telegram allows one getUpdates at a time: a newer request ends the older one with 409.
    const previous = this.pendingPoll;
    if (previous) {
      this.pendingPoll = undefined;
      clearTimeout(previous.timer);
      previous.answer({
        ok: false,
        error_code: 409,
        description:
          'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
      });
    }
    return new Promise((resolve) => {
      const poll: PendingPoll = {
        params,
        answer: (answer) => resolve(answer),
        timer: setTimeout(() => {
          if (this.pendingPoll === poll) this.pendingPoll = undefined;
          resolve({ ok: true, result: this.collect(params) });
        }, timeout * 1000),
      };
      this.pendingPoll = poll;
      res.on('close', () => {
        if (res.writableFinished) return;
        clearTimeout(poll.timer);
        if (this.pendingPoll === poll) this.pendingPoll = undefined;
        resolve(undefined);
      });
    });
  }

  private collect(params: Record<string, unknown>): FakeUpdate[] {
    const limit = Math.min(Math.max(toInt(params.limit) ?? 100, 1), 100);
    const allowed = Array.isArray(params.allowed_updates) ? (params.allowed_updates as unknown[]) : undefined;
    const wanted = (update: FakeUpdate) =>
      !allowed ||
      allowed.length === 0 ||
      Object.keys(update).some((key) => key !== 'update_id' && allowed.includes(key));
    return this.queue.filter(wanted).slice(0, limit);
  }

  private wakePoll(): void {
    const poll = this.pendingPoll;
    if (!poll) return;
    const ready = this.collect(poll.params);
    if (ready.length === 0) return;
    this.pendingPoll = undefined;
    clearTimeout(poll.timer);
    poll.answer({ ok: true, result: ready });
  }

  private sendMessage(params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const chat = chatKey === undefined ? undefined : this.chats.get(chatKey);
    if (!chatKey || !chat) return bad('chat not found');
    const text = typeof params.text === 'string' ? params.text : '';
    const problem = this.checkText(text, params.parse_mode);
    if (problem) return problem;
    const reply = params.reply_parameters as { message_id?: unknown; allow_sending_without_reply?: unknown };
    const replyTo = reply ? toInt(reply.message_id) : toInt(params.reply_to_message_id);
    const replyKnown = replyTo !== undefined && this.knownMessageIds.get(chatKey)?.has(replyTo) === true;
    if (replyTo !== undefined && !replyKnown && reply?.allow_sending_without_reply !== true) {
      return bad('message to be replied not found');
    }
    const threadId = toInt(params.message_thread_id);
    const sent: FakeSentMessage = {
      message_id: this.newMessageId(chatKey),
      chat_id: chatKey,
      text,
      edits: 0,
      ...(typeof params.parse_mode === 'string' ? { parse_mode: params.parse_mode } : {}),
      ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
      ...(replyKnown ? { reply_to_message_id: replyTo } : {}),
      ...(params.reply_markup !== undefined ? { reply_markup: params.reply_markup } : {}),
    };
    this.rememberMessageId(chatKey, sent.message_id);
    const list = this.messages.get(chatKey) ?? [];
    list.push(sent);
    this.messages.set(chatKey, list);
    return { ok: true, result: this.asMessage(chat, sent) };
  }

  /** Forum topics by `<chat>:<thread id>` → name. */
  readonly topics = new Map<string, string>();

  private forumTopic(method: string, params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const chat = chatKey === undefined ? undefined : this.chats.get(chatKey);
    if (!chatKey || !chat) return bad('chat not found');
    if (!(chat as { is_forum?: boolean }).is_forum) return bad('the chat is not a forum');
    const name = typeof params.name === 'string' ? params.name : '';
    if (!name || name.length > 128) return bad('TOPIC_NAME_INVALID');
    if (method === 'createForumTopic') {
      const threadId = this.newMessageId(chatKey);
      this.rememberMessageId(chatKey, threadId);
      this.topics.set(`${chatKey}:${threadId}`, name);
      return { ok: true, result: { message_thread_id: threadId, name, icon_color: 7322096 } };
    }
    const key = `${chatKey}:${toInt(params.message_thread_id)}`;
    if (!this.topics.has(key)) return bad('TOPIC_ID_INVALID');
    this.topics.set(key, name);
    return { ok: true, result: true };
  }

  /** Telegram's reactions are a fixed list: anything else is REACTION_INVALID, as on the real API. */
  private setMessageReaction(params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const message = chatKey
      ? this.messages.get(chatKey)?.find((m) => m.message_id === toInt(params.message_id))
      : undefined;
    const known = chatKey ? this.knownMessageIds.get(chatKey)?.has(toInt(params.message_id) ?? -1) : false;
    if (!known) return bad('message to react not found');
    const reaction = Array.isArray(params.reaction) ? (params.reaction as { emoji?: string }[]) : [];
    const emoji = reaction.map((r) => r.emoji ?? '');
    if (emoji.some((e) => !TELEGRAM_REACTIONS.has(e))) return bad('REACTION_INVALID');
    this.reactions.set(`${chatKey}:${params.message_id}`, emoji);
    if (message) message.reactions = emoji;
    return { ok: true, result: true };
  }

  private sendFile(method: string, params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const chat = chatKey === undefined ? undefined : this.chats.get(chatKey);
    if (!chatKey || !chat) return bad('chat not found');
    const field =
      { sendPhoto: 'photo', sendVoice: 'voice', sendAudio: 'audio', sendVideo: 'video' }[method] ??
      'document';
    const value = params[field] as { filename?: string; bytes?: Buffer } | string | undefined;
    if (value === undefined) return bad(`there is no ${field} in the request`);
    const caption = typeof params.caption === 'string' ? params.caption : undefined;
    const threadId = toInt(params.message_thread_id);
    const sent: FakeSentMessage = {
      message_id: this.newMessageId(chatKey),
      chat_id: chatKey,
      text: '',
      edits: 0,
      media: {
        method,
        ...(typeof value === 'string' ? { url: value } : { bytes: value.bytes, filename: value.filename }),
        ...(caption !== undefined ? { caption } : {}),
      },
      ...(threadId !== undefined ? { message_thread_id: threadId } : {}),
    };
    this.rememberMessageId(chatKey, sent.message_id);
    const list = this.messages.get(chatKey) ?? [];
    list.push(sent);
    this.messages.set(chatKey, list);
    return { ok: true, result: this.asMessage(chat, sent) };
  }

  private editMessageText(params: Record<string, unknown>): Answer {
    if (params.inline_message_id !== undefined) return bad('inline messages are not supported by the fake');
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const chat = chatKey === undefined ? undefined : this.chats.get(chatKey);
    if (!chatKey || !chat) return bad('chat not found');
    const messageId = toInt(params.message_id);
    const message = this.messages.get(chatKey)?.find((m) => m.message_id === messageId);
    if (!message) return bad('message to edit not found');
    const text = typeof params.text === 'string' ? params.text : '';
    const problem = this.checkText(text, params.parse_mode);
    if (problem) return problem;
    const parseMode = typeof params.parse_mode === 'string' ? params.parse_mode : undefined;
    if (message.text === text && message.parse_mode === parseMode) {
      return bad(
        'message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message',
      );
    }
    message.text = text;
    if (parseMode === undefined) delete message.parse_mode;
    else message.parse_mode = parseMode;
    message.edits += 1;
    return {
      ok: true,
      result: { ...this.asMessage(chat, message), edit_date: Math.floor(Date.now() / 1000) },
    };
  }

  private sendChatAction(params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    if (!chatKey || !this.chats.has(chatKey)) return bad('chat not found');
    if (typeof params.action !== 'string' || !CHAT_ACTIONS.has(params.action)) {
      return bad('wrong parameter action in request');
    }
    return { ok: true, result: true };
  }

  private getChat(params: Record<string, unknown>): Answer {
    const chatKey = params.chat_id === undefined ? undefined : String(params.chat_id);
    const chat = chatKey === undefined ? undefined : this.chats.get(chatKey);
    if (!chat) return bad('chat not found');
    return { ok: true, result: { ...chat, accent_color_id: 0, max_reaction_count: 11 } };
  }

  // --- helpers -------------------------------------------------------------------------------------

  private checkText(text: string, parseMode: unknown): Answer | undefined {
    if (text.trim().length === 0) return bad('message text is empty');
    if (text.length > 4096) return bad('message is too long');
    if (parseMode === undefined || parseMode === '') return undefined;
    if (parseMode === 'MarkdownV2') {
      const problem = markdownV2Error(text);
      return problem ? bad(`can't parse entities: ${problem}`) : undefined;
    }
    if (parseMode === 'Markdown' || parseMode === 'HTML') return undefined;
    return bad(`unsupported parse_mode "${String(parseMode)}"`);
  }

  private asMessage(chat: FakeChat, message: FakeSentMessage): Record<string, unknown> {
    return {
      message_id: message.message_id,
      date: Math.floor(Date.now() / 1000),
      chat,
      from: this.bot,
      text: message.text,
      ...(message.message_thread_id !== undefined ? { message_thread_id: message.message_thread_id } : {}),
      ...(message.reply_to_message_id !== undefined
        ? { reply_to_message: { message_id: message.reply_to_message_id, chat, date: 0 } }
        : {}),
    };
  }

  private newMessageId(chatKey: string): number {
    const id = (this.lastMessageId.get(chatKey) ?? 0) + 1;
    this.lastMessageId.set(chatKey, id);
    return id;
  }

  private rememberMessageId(chatKey: string, id: number): void {
    const known = this.knownMessageIds.get(chatKey) ?? new Set<number>();
    known.add(id);
    this.knownMessageIds.set(chatKey, known);
    this.lastMessageId.set(chatKey, Math.max(this.lastMessageId.get(chatKey) ?? 0, id));
  }
}
