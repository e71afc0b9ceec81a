import type { Logger } from 'pino';
import {
  type CapabilityDescriptor,
  failedResult,
  isEgressDecline,
  messageLength,
  type OutboundActionInput,
  type OutboundResult,
  placeholderDescriptor,
  splitMessage,
  supportsOp,
} from '../protocol/index.js';

/** Where a reply goes: the chat, the message it answers, and platform routing (forum thread). */
export interface ReplyTarget {
  chatId: string;
  replyTo: string | null;
  metadata: Record<string, unknown>;
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
export class ReplyChannel {
  constructor(
    private readonly link: OutboundLink,
    private readonly platform: string,
    private readonly log: Logger,
  ) {}

  descriptor(): CapabilityDescriptor {
    return this.link.descriptor ?? placeholderDescriptor(this.platform);
  }

  canEdit(): boolean {
    const descriptor = this.descriptor();
    return descriptor.supports_edit && supportsOp(descriptor, 'edit');
  }

  /** Send `text` as one or more messages; resolves with the first message's result. */
  async sendText(target: ReplyTarget, text: string): Promise<OutboundResult> {
    const { max_message_length: limit, len_unit: unit } = this.descriptor();
    let first: OutboundResult | undefined;
    for (const [index, chunk] of splitMessage(text, limit, unit).entries()) {
      const result = await this.link.send({
        op: 'send',
        chat_id: target.chatId,
        content: chunk,
        reply_to: index === 0 ? target.replyTo : null,
        metadata: target.metadata,
      });
      if (result.success === false) {
        if (isEgressDecline(result)) this.reportDecline(target, result);
        else this.log.warn({ chatId: target.chatId, error: result.error }, 'reply could not be sent');
        return first ?? result;
      }
      first ??= result;
    }
    return first ?? { success: true };
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
    this.live = channel.canEdit();
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
