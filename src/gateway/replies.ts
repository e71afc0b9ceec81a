import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { boundedCache } from '../common/cache.js';
import { errorMessage } from '../common/errors.js';
import {
  type CapabilityDescriptor,
  failedResult,
  isEgressDecline,
  type MessageEvent,
  messageLength,
  OUTBOUND_ERRORS,
  type OutboundActionInput,
  type OutboundResult,
  placeholderDescriptor,
  splitMessage,
  supportsOp,
} from '../protocol/index.js';
import type { AgentAction } from './agents/types.js';
import type { MediaUploader } from './media-upload.js';

/** Where a reply goes: the chat, the message it answers, and platform routing (forum thread). */
export interface ReplyTarget {
  chatId: string;
  replyTo: string | null;
  metadata: Record<string, unknown>;
  /**
   * Text replies go through this capability (a Discord interaction's) before `send` (current
   * §7.2 `follow_up`); other ops still go to the chat.
   */
  followUp?: FollowUpLane;
}

/** A follow-up capability the connector holds for a session; the gateway names it, never holds it. */
export interface FollowUpLane {
  /** The session the capability was bound to: the turn's session key. */
  sessionKey: string;
  /** e.g. `discord.interaction_token`. */
  kind: string;
}

/** The outbound half the replies need; the relay transport provides it. */
export interface OutboundLink {
  readonly descriptor: CapabilityDescriptor | undefined;
  send(action: OutboundActionInput): Promise<OutboundResult>;
}

/** Minimum time between two edits of a streamed reply (issue: at most once a second). */
const STREAM_EDIT_INTERVAL_MS = 1_000;

/**
 * Sends replies within the adopted descriptor's limits: split with the reference splitter in the
 * descriptor's unit, streamed into one message via `edit` when the platform supports it.
 */
/** How long a prompt waits for a press unless the agent says otherwise (current §7.4). */
const DEFAULT_PROMPT_TIMEOUT_S = 3600;
/** This process's part of every prompt id: `<6 hex>.<8 hex>` (current §7.4). */
const PROMPT_NONCE = randomBytes(3).toString('hex');

export const ACTION_TEXTS = {
  noLongerWaiting: (question: string) => `⏱️ No longer waiting for an answer to: ${question}`,
  pressTooLate: 'That question is no longer waiting for an answer.',
  /** Replaces a slash command's "thinking…" when the turn answered with actions only. */
  done: '✅ Done.',
  cannotShowFiles: (name: string) => `(${name}: this chat cannot show files)`,
  fileNotSent: (name: string, error: string) => `(${name} could not be sent: ${error})`,
  noThreads: '(this chat has no threads)',
  threadNotOpened: (error: string) => `(the thread could not be opened: ${error})`,
} as const;

export class ReplyChannel {
  /** Prompts waiting for a press, by id: the timer that says so when they time out. */
  private readonly prompts = new Map<string, NodeJS.Timeout>();
  /** Prompts already answered, so a repeated press is ignored rather than called late. */
  private readonly answered = boundedCache<string, true>({ max: 10_000, ttlMs: 24 * 3600_000 });
  /** Follow-up lanes the connector said it has no capability for: their texts go by `send`. */
  private readonly lapsed = new WeakSet<FollowUpLane>();

  constructor(
    private readonly link: OutboundLink,
    private readonly platform: string,
    private readonly log: Logger,
    private readonly uploader?: MediaUploader,
  ) {}

  /**
   * The agent's actions, in order, each as the op the platform advertises (current §6: an op is
   * used only when advertised) or, where it cannot, said in text. Never throws.
   */
  async perform(target: ReplyTarget, event: MessageEvent, actions: readonly AgentAction[]): Promise<void> {
    for (const action of actions) {
      try {
        if (action.kind === 'media') await this.sendMedia(target, action);
        else if (action.kind === 'prompt') await this.prompt(target, action);
        else if (action.kind === 'thread') await this.thread(target, action);
        else await this.react(target, event, action);
      } catch (error) {
        this.log.warn({ kind: action.kind, err: errorMessage(error) }, 'agent action failed');
      }
    }
  }

  /**
   * A press on prompt `id` arrived (current §7.4): `waiting` when it was still waiting (and now is
   * not); `expired` for one of ours that timed out or was asked before a restart; `ignore` for a
   * repeat, or a prompt another gateway asked (its id carries another process's nonce).
   */
  promptAnswered(id: string): 'waiting' | 'expired' | 'ignore' {
    const timer = this.prompts.get(id);
    if (timer) {
      clearTimeout(timer);
      this.prompts.delete(id);
      this.answered.set(id, true);
      return 'waiting';
    }
    if (this.answered.has(id) || !id.startsWith(`${PROMPT_NONCE}.`)) return 'ignore';
    return 'expired';
  }

  /**
   * A press nothing here waits for and that needs no answer: a prompt another gateway asked (its
   * id carries another process's nonce; Discord presses reach every gateway of the tenant) or a
   * repeat. Does not consume the press.
   */
  pressIgnored(id: string): boolean {
    return !this.prompts.has(id) && (this.answered.has(id) || !id.startsWith(`${PROMPT_NONCE}.`));
  }

  /** Stop every prompt timer (the gateway is stopping). */
  close(): void {
    for (const timer of this.prompts.values()) clearTimeout(timer);
    this.prompts.clear();
  }

  private async sendMedia(
    target: ReplyTarget,
    action: Extract<AgentAction, { kind: 'media' }>,
  ): Promise<void> {
    const file = action.file;
    const name = file.filename || action.mediaKind;
    if (!supportsOp(this.descriptor(), 'send_media')) {
      // Current §14 case 33: a public URL goes as text; bytes cannot be shown at all.
      const text =
        'url' in file
          ? [action.caption, file.url].filter(Boolean).join('\n')
          : ACTION_TEXTS.cannotShowFiles(name);
      await this.sendText(target, text);
      return;
    }
    let sourceUrl: string;
    if ('url' in file) {
      if (!/^https:\/\//i.test(file.url)) {
        await this.sendText(target, ACTION_TEXTS.fileNotSent(name, 'only https URLs are sent by address'));
        return;
      }
      sourceUrl = file.url;
    } else {
      const uploaded = this.uploader
        ? await this.uploader.upload(file)
        : ({ ok: false, error: 'no media upload configured' } as const);
      if (!uploaded.ok) {
        this.log.warn({ error: uploaded.error }, 'agent file not uploaded');
        await this.sendText(target, ACTION_TEXTS.fileNotSent(name, uploaded.error));
        return;
      }
      sourceUrl = uploaded.url;
    }
    const result = await this.link.send({
      op: 'send_media',
      chat_id: target.chatId,
      media_kind: action.mediaKind,
      source_url: sourceUrl,
      content: action.caption ?? '',
      reply_to: target.replyTo,
      ...(file.filename ? { filename: file.filename } : {}),
      metadata: target.metadata,
    });
    if (result.success === false) {
      if (isEgressDecline(result)) this.reportDecline(target, result);
      else await this.sendText(target, ACTION_TEXTS.fileNotSent(name, result.error ?? 'refused'));
    }
  }

  private async prompt(target: ReplyTarget, action: Extract<AgentAction, { kind: 'prompt' }>): Promise<void> {
    const promptId = `${PROMPT_NONCE}.${randomBytes(4).toString('hex')}`;
    const timeoutS = action.timeoutSeconds ?? DEFAULT_PROMPT_TIMEOUT_S;
    let result: OutboundResult;
    if (supportsOp(this.descriptor(), 'prompt')) {
      result = await this.link.send({
        op: 'prompt',
        chat_id: target.chatId,
        content: action.text,
        prompt_kind: action.promptKind ?? 'choice',
        prompt_id: promptId,
        options: action.options,
        reply_to: target.replyTo,
        timeout_s: timeoutS,
        metadata: target.metadata,
      });
    } else {
      // Without buttons the options become commands to type; the answer arrives as plain text.
      const lines = action.options.map((option) => `/${option.id} — ${option.label}`);
      result = await this.sendText(target, [action.text, ...lines].join('\n'));
      return;
    }
    if (result.success === false) {
      this.log.warn({ error: result.error }, 'prompt not sent');
      return;
    }
    const timer = setTimeout(() => {
      this.prompts.delete(promptId);
      void this.sendText(target, ACTION_TEXTS.noLongerWaiting(action.text)).catch(() => undefined);
    }, timeoutS * 1000);
    timer.unref();
    this.prompts.set(promptId, timer);
  }

  /** A thread under the chat (current §7.6), or a word that this chat has none. */
  private async thread(target: ReplyTarget, action: Extract<AgentAction, { kind: 'thread' }>): Promise<void> {
    if (!supportsOp(this.descriptor(), 'thread_create')) {
      await this.sendText(target, ACTION_TEXTS.noThreads);
      return;
    }
    const result = await this.link.send({
      op: 'thread_create',
      chat_id: target.chatId,
      thread_name: action.name,
      metadata: target.metadata,
    });
    if (result.success === false) {
      if (isEgressDecline(result)) this.reportDecline(target, result);
      else await this.sendText(target, ACTION_TEXTS.threadNotOpened(result.error ?? 'refused'));
    }
  }

  /** Best effort on the message being answered (current §7.5): a failure is only logged. */
  private async react(
    target: ReplyTarget,
    event: MessageEvent,
    action: Extract<AgentAction, { kind: 'react' }>,
  ): Promise<void> {
    // An interaction's id is no message: its anchor is the message it came from, if any (current §7.5).
    const anchor = target.followUp ? target.replyTo : event.message_id;
    if (!supportsOp(this.descriptor(), 'react') || !anchor) return;
    const result = await this.link.send({
      op: 'react',
      chat_id: target.chatId,
      message_id: anchor,
      emoji: action.emoji,
      remove: action.remove === true,
      metadata: target.metadata,
    });
    if (result.success === false) this.log.info({ error: result.error }, 'reaction not set');
  }

  descriptor(): CapabilityDescriptor {
    return this.link.descriptor ?? placeholderDescriptor(this.platform);
  }

  canEdit(): boolean {
    const descriptor = this.descriptor();
    return descriptor.supports_edit && supportsOp(descriptor, 'edit');
  }

  /**
   * Send `text` as one or more messages; resolves with the first message's result. A target with a
   * follow-up lane sends each part through it while the connector holds the capability.
   */
  async sendText(target: ReplyTarget, text: string): Promise<OutboundResult> {
    const { max_message_length: limit, len_unit: unit } = this.descriptor();
    let first: OutboundResult | undefined;
    for (const [index, chunk] of splitMessage(text, limit, unit).entries()) {
      const result = await this.sendChunk(target, chunk, index === 0 ? target.replyTo : null);
      if (result.success === false) {
        if (isEgressDecline(result)) this.reportDecline(target, result);
        else this.log.warn({ chatId: target.chatId, error: result.error }, 'reply could not be sent');
        return first ?? result;
      }
      first ??= result;
    }
    return first ?? { success: true };
  }

  /**
   * One part of a text reply. Through the target's follow-up lane first, if it has one (current
   * §7.2): the connector edits the interaction's deferred reply with the first and posts the rest.
   * When the connector answers that it holds no capability for the session (absent, expired after
   * 15 minutes, another tenant's), this part and every later one of the lane go to the chat by
   * `send` instead, so the answer is not lost. Never after an egress decline (a refusal of the
   * destination is not downgraded to another op, current §7.1), nor when the connector gave no
   * answer (an ambiguous failure: the follow-up may have been posted and a `send` could say it
   * twice; no socket: a `send` would fail the same way).
   */
  private async sendChunk(
    target: ReplyTarget,
    content: string,
    replyTo: string | null,
  ): Promise<OutboundResult> {
    const lane = target.followUp;
    if (lane && !this.lapsed.has(lane)) {
      const profile = sessionKeyProfile(lane.sessionKey);
      const result = await this.link.send({
        op: 'follow_up',
        session_key: lane.sessionKey,
        kind: lane.kind,
        content,
        metadata: profile ? { ...target.metadata, profile } : target.metadata,
      });
      if (result.success !== false || !connectorRefused(result)) return result;
      this.lapsed.add(lane);
      this.log.info(
        { session: lane.sessionKey, kind: lane.kind, error: result.error },
        'no follow-up capability for the session; replying to the chat instead',
      );
    }
    return this.link.send({
      op: 'send',
      chat_id: target.chatId,
      content,
      reply_to: replyTo,
      metadata: target.metadata,
    });
  }

  /** The connector refused the chat itself: said once per reply, never retried as another op. */
  reportDecline(target: ReplyTarget, result: OutboundResult): void {
    this.log.warn(
      { chatId: target.chatId, error: result.error, code: result.code },
      'the connector declined the reply: this chat is not an approved destination for this gateway',
    );
  }

  async typing(target: ReplyTarget, on = true): Promise<void> {
    if (!supportsOp(this.descriptor(), 'typing')) return;
    await this.link.send({
      op: 'typing',
      chat_id: target.chatId,
      content: on ? undefined : '',
      metadata: target.metadata,
    });
  }

  stream(target: ReplyTarget): ReplyStream {
    return new ReplyStream(this, this.link, target);
  }
}

/**
 * One streamed reply: the first progress sends a message, later progress edits it at most once a
 * second, and `finish` leaves the final text (split into more messages if it outgrew the limit).
 * Without edit support nothing is sent until `finish`.
 */
class ReplyStream {
  private messageId: string | undefined;
  private shown = '';
  private latest = '';
  private lastEditAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> = Promise.resolve();
  private live: boolean;
  private finished = false;

  constructor(
    private readonly channel: ReplyChannel,
    private readonly link: OutboundLink,
    private readonly target: ReplyTarget,
  ) {
    // A follow-up cannot be edited: a reply through one is shown once, when it is final.
    this.live = channel.canEdit() && !target.followUp;
  }

  update(textSoFar: string): void {
    if (!this.live || this.finished || textSoFar.trim() === '') return;
    const { max_message_length: limit, len_unit: unit } = this.channel.descriptor();
    if (messageLength(textSoFar, unit) > limit) {
      // Past one message: stop live updates; `finish` splits the whole text.
      this.live = false;
      return;
    }
    this.latest = textSoFar;
    if (this.timer) return;
    const wait = Math.max(0, this.lastEditAt + STREAM_EDIT_INTERVAL_MS - Date.now());
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.inflight = this.inflight.then(() => this.flush());
      },
      this.messageId === undefined && this.lastEditAt === 0 ? 0 : wait,
    );
  }

  /** Show the final text. */
  async finish(text: string): Promise<void> {
    this.finished = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inflight;
    const { max_message_length: limit, len_unit: unit } = this.channel.descriptor();
    if (this.messageId === undefined) {
      await this.channel.sendText(this.target, text);
      return;
    }
    const chunks = splitMessage(text, limit, unit);
    const [head, ...rest] = chunks;
    const edited = head !== undefined && head !== this.shown ? await this.edit(head) : undefined;
    if (edited !== undefined && isEgressDecline(edited)) {
      // A refusal of the chat itself: another op to the same chat would be refused too (current §7.1).
      this.channel.reportDecline(this.target, edited);
      return;
    }
    if (head !== undefined && edited?.success === false) {
      // The final edit failed (rate limit, timeout): never leave a partial text as the answer.
      await this.link.send({
        op: 'send',
        chat_id: this.target.chatId,
        content: head,
        reply_to: null,
        metadata: this.target.metadata,
      });
    }
    for (const chunk of rest) {
      await this.link.send({
        op: 'send',
        chat_id: this.target.chatId,
        content: chunk,
        reply_to: null,
        metadata: this.target.metadata,
      });
    }
  }

  private async flush(): Promise<void> {
    if (this.finished || this.latest === this.shown) return;
    const text = this.latest;
    this.lastEditAt = Date.now();
    if (this.messageId === undefined) {
      const result = await this.link.send({
        op: 'send',
        chat_id: this.target.chatId,
        content: text,
        reply_to: this.target.replyTo,
        metadata: this.target.metadata,
      });
      if (result.success !== false && result.message_id) {
        this.messageId = result.message_id;
        this.shown = text;
      } else {
        this.live = false;
      }
      return;
    }
    await this.edit(text);
  }

  /** Stop any pending live update (the turn ended without a final text, e.g. /stop). */
  cancel(): void {
    this.finished = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async edit(text: string): Promise<OutboundResult> {
    if (this.messageId === undefined) return failedResult('no message to edit');
    const result = await this.link.send({
      op: 'edit',
      chat_id: this.target.chatId,
      message_id: this.messageId,
      content: text,
      metadata: this.target.metadata,
    });
    if (result.success !== false) this.shown = text;
    return result;
  }
}

/**
 * A definite refusal by the connector that is not an egress decline: what a follow-up falls back
 * from. The transport's own failures (no socket, the write failed, no answer in time) are not.
 */
function connectorRefused(result: OutboundResult): boolean {
  if (result.success !== false || result.ambiguous === true || isEgressDecline(result)) return false;
  const error = result.error ?? '';
  return !(
    error === OUTBOUND_ERRORS.notConnected ||
    error === OUTBOUND_ERRORS.closed ||
    error === OUTBOUND_ERRORS.connectionLost ||
    error === OUTBOUND_ERRORS.timedOut ||
    error.startsWith(OUTBOUND_ERRORS.sendFailed)
  );
}

/**
 * The profile a session key's namespace names (current §5.6, §7.2 `follow_up` metadata):
 * `agent:<profile>:…`, `agent:main~:…` for a profile named `main`; none for `agent:main:…`.
 */
export function sessionKeyProfile(sessionKey: string): string | undefined {
  const [agent, namespace] = sessionKey.split(':', 2);
  if (agent !== 'agent' || !namespace || namespace === 'main') return undefined;
  return namespace === 'main~' ? 'main' : namespace;
}
