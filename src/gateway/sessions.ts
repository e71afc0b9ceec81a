import type { Logger } from 'pino';
import { errorMessage } from '../common/errors.js';
import {
  buildSessionKey,
  type MessageEvent,
  normalizePlatform,
  type SessionKeyOptions,
} from '../protocol/index.js';
import type { Agent, ConversationMessage, HistoryStore } from './agents/types.js';
import type { InboxJournal, InboxOutcome } from './inbox.js';
import type { TurnMetrics } from './metrics.js';
import { ACTION_TEXTS, type ReplyChannel, type ReplyTarget } from './replies.js';

/** User-visible texts, exactly as the reference (lifecycle reference §1.4, §1.8). */
export const TEXTS = {
  drainRefusal:
    "⏳ This agent is draining for a maintenance action and isn't accepting new turns right now. It'll be back in a moment — please resend shortly.",
  stopped: '⚡ Stopped. You can continue this session.',
  stoppedBeforeStart: "⚡ Stopped. The agent hadn't started yet — you can continue this session.",
  nothingToStop: 'No active task to stop.',
  shuttingDown: '⏳ Gateway is shutting down and is not accepting new work right now.',
  restarting: '⏳ Gateway is restarting and is not accepting new work right now.',
} as const;

const HISTORY_TURNS = 40;

export interface InboundOptions {
  /** Internal events (restart replays, background notices) bypass the drain gate. */
  internal?: boolean;
  /** The delivery id (signed delivery or `inbound` bufferId), for the durable inbox's dedupe. */
  deliveryId?: string | undefined;
  /** Already in the inbox (a replay at boot): do not record it again. */
  inboxId?: number;
  /**
   * The event is a Discord interaction (current §12): its text replies go through the follow-up
   * capability of this kind the connector holds for the session (current §7.2), not `send`.
   */
  followUpKind?: string | undefined;
}

export interface SessionManagerOptions {
  agent: Agent;
  history: HistoryStore;
  replies: ReplyChannel;
  log: Logger;
  keyOptions: SessionKeyOptions;
  /** External drain (reversible): new turns are refused with the reference text. */
  externalDrainActive: () => boolean;
  /** Shutdown or restart (one-way): new turns are refused; `restart` picks the wording. */
  shutdown: () => 'none' | 'stopping' | 'restarting';
  onActiveChange: (active: number) => void;
  /** Durable record of accepted events; without one, accepted work lives in memory only. */
  journal?: InboxJournal;
  /** Fetch the event's re-hosted files for the agent (`local_path` on each); never throws. */
  localizeMedia?: (event: MessageEvent) => Promise<MessageEvent>;
  /** Turn counters and durations (`metrics.ts`). */
  metrics?: TurnMetrics;
  /** Turn boundaries for the activity log (metadata only: never the message text). */
  onTurnEvent?: (event: TurnEvent) => void;
}

/** A turn started or ended, as the activity log records it. */
export interface TurnEvent {
  kind: 'turn_started' | 'turn_finished' | 'turn_stopped' | 'turn_failed';
  session: string;
  platform: string;
  chat_id: string;
  /** Who stopped it (`stop`, `interrupt`, `shutdown`), for `turn_stopped`. */
  by?: string;
  seconds?: number;
}

/** A turn running now, as `gateway_state.json` lists it for the dashboard. */
export interface RunningTurn {
  session: string;
  platform: string;
  chat_id: string;
  started_at: string;
}

interface Running {
  controller: AbortController;
  /** Set once the agent is actually running (after history load); before that it is a claim. */
  started: boolean;
  stoppedBy: 'stop' | 'interrupt' | 'shutdown' | null;
  /** For the metrics: when the turn began, and whether the agent failed. */
  startedAt: number;
  failed: boolean;
  /** Wall-clock start (ISO) and where the turn answers, for the dashboard's list and its Stop. */
  startedAtIso: string;
  platform: string;
  chatId: string;
  target: ReplyTarget;
}

/**
 * One running turn per session. The slot is claimed synchronously before any await, so two
 * messages for one session can never both start a turn; messages to a busy session wait in order.
 * `/stop` and interrupt deliveries cancel exactly that session's turn.
 */
export class SessionManager {
  private readonly running = new Map<string, Running>();
  private readonly queues = new Map<string, MessageEvent[]>();
  private readonly idleWaiters = new Set<() => void>();
  private readonly inboxIds = new WeakMap<MessageEvent, number>();
  /** Events answered through a follow-up capability, with its kind. */
  private readonly followUpKinds = new WeakMap<MessageEvent, string>();
  /** Queued events the gateway made itself, which a drain does not refuse. */
  private readonly internalEvents = new WeakSet<MessageEvent>();

  constructor(private readonly options: SessionManagerOptions) {}

  get activeCount(): number {
    return this.running.size;
  }

  /** Messages waiting behind running turns, all sessions together, and the longest queue. */
  queueDepth(): { queued: number; deepest: number } {
    let queued = 0;
    let deepest = 0;
    for (const queue of this.queues.values()) {
      queued += queue.length;
      deepest = Math.max(deepest, queue.length);
    }
    return { queued, deepest };
  }

  activeSessions(): string[] {
    return [...this.running.keys()];
  }

  /** The turns running now, oldest first (session key, platform, chat, ISO start). */
  turns(): RunningTurn[] {
    return [...this.running.entries()].map(([session, run]) => ({
      session,
      platform: run.platform,
      chat_id: run.chatId,
      started_at: run.startedAtIso,
    }));
  }

  /**
   * Stop this session's running turn from outside the chat (the dashboard's Stop): exactly what
   * `/stop` in that chat does — its queued messages dropped, the turn aborted, the chat told
   * `⚡ Stopped. You can continue this session.` False when the session has no running turn.
   */
  stop(sessionKey: string): boolean {
    const run = this.running.get(sessionKey);
    if (!run) return false;
    this.handleStop(sessionKey, run.target);
    return true;
  }

  sessionKeyOf(event: MessageEvent): string {
    return buildSessionKey(
      { ...event.source, platform: normalizePlatform(event.source.platform) },
      this.options.keyOptions,
    );
  }

  /**
   * Hand an inbound event over. Returns at once; the turn runs in the background. While the
   * gateway shuts down it throws `GatewayStoppingError` instead, so the delivery is answered with
   * an error and the connector keeps it for after the restart: nothing accepted is dropped.
   * `duplicate` when the inbox had already accepted the delivery id (nothing runs again).
   */
  handleInbound(event: MessageEvent, options: InboundOptions = {}): 'accepted' | 'duplicate' {
    const key = this.sessionKeyOf(event);
    if (options.followUpKind) this.followUpKinds.set(event, options.followUpKind);
    const target = this.targetOf(key, event);
    const stop = isStopCommand(event.text);
    if (!stop && this.options.shutdown() !== 'none') throw new GatewayStoppingError();
    const journal = this.options.journal;
    if (journal && options.inboxId === undefined) {
      const id = journal.accept(options.deliveryId, key, event, options.followUpKind);
      if (id === null) {
        this.options.log.info({ session: key, deliveryId: options.deliveryId }, 'duplicate delivery ignored');
        return 'duplicate';
      }
      this.inboxIds.set(event, id);
    } else if (options.inboxId !== undefined) {
      this.inboxIds.set(event, options.inboxId);
    }
    if (stop) {
      this.finish(event, 'ignored');
      this.handleStop(key, target);
      return 'accepted';
    }
    const press = event.prompt_response;
    if (press && this.options.replies.pressIgnored(press.prompt_id)) {
      // A press on a prompt another gateway asked (Discord presses reach every gateway of the
      // tenant) or a repeat: consumed silently, before a refusal could answer it (current §7.4).
      this.finish(event, 'ignored');
      this.options.log.debug({ session: key }, 'prompt press not for this gateway ignored');
      return 'accepted';
    }
    if (this.running.has(key)) {
      // Busy path: accepted work for this session, kept in order; whether it may still start is
      // decided when its turn comes (a drain begun meanwhile refuses it then, #18).
      if (options.internal) this.internalEvents.add(event);
      const queue = this.queues.get(key) ?? [];
      queue.push(event);
      this.queues.set(key, queue);
      return 'accepted';
    }
    const refusal = this.refusal(options);
    if (refusal) {
      this.finish(event, 'refused');
      this.options.log.info({ session: key }, 'refusing new turn');
      void this.options.replies.sendText(target, refusal);
      return 'accepted';
    }
    this.start(key, event);
    return 'accepted';
  }

  /** Cancel exactly this session's turn (interrupt delivery, `interrupt_inbound`). */
  interrupt(sessionKey: string, reason: 'interrupt' | 'shutdown' = 'interrupt'): boolean {
    const run = this.running.get(sessionKey);
    if (!run) return false;
    run.stoppedBy = reason;
    run.controller.abort();
    return true;
  }

  interruptAll(): number {
    let count = 0;
    for (const key of this.running.keys()) if (this.interrupt(key, 'shutdown')) count++;
    this.queues.clear();
    return count;
  }

  /** Resolves true when no turn is running, false if `timeoutMs` passes first. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(onIdle);
        resolve(idle);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
      this.idleWaiters.add(onIdle);
    });
  }

  private targetOf(key: string, event: MessageEvent): ReplyTarget {
    return replyTarget(event, key, this.followUpKinds.get(event));
  }

  /** The event's work is over (answered, refused or its turn ended): close its inbox entry. */
  private finish(
    event: MessageEvent,
    outcome: InboxOutcome = 'answered',
    turn?: { seconds: number; failed: boolean },
  ): void {
    this.options.metrics?.finished(turn?.failed ? 'failed' : outcome, turn?.seconds);
    const id = this.inboxIds.get(event);
    if (id === undefined) return;
    this.inboxIds.delete(event);
    this.options.journal?.done(id, outcome);
  }

  private refusal(options: InboundOptions): string | undefined {
    // The external-drain gate sits right before the slot claim; internal events bypass it.
    if (this.options.externalDrainActive() && !options.internal) return TEXTS.drainRefusal;
    return undefined;
  }

  private handleStop(key: string, target: ReplyTarget): void {
    const run = this.running.get(key);
    for (const queued of this.queues.get(key) ?? []) this.finish(queued, 'stopped');
    this.queues.delete(key);
    if (!run) {
      void this.options.replies.sendText(target, TEXTS.nothingToStop);
      return;
    }
    run.stoppedBy = 'stop';
    run.controller.abort();
    void this.options.replies.sendText(target, run.started ? TEXTS.stopped : TEXTS.stoppedBeforeStart);
  }

  private start(key: string, event: MessageEvent): void {
    const run: Running = {
      controller: new AbortController(),
      started: false,
      stoppedBy: null,
      startedAt: performance.now(),
      failed: false,
      startedAtIso: new Date().toISOString(),
      platform: normalizePlatform(event.source.platform),
      chatId: event.source.chat_id ?? '',
      target: this.targetOf(key, event),
    };
    this.running.set(key, run);
    this.options.metrics?.turnStarted();
    this.turnEvent('turn_started', key, run);
    this.options.onActiveChange(this.running.size);
    // The agent gets the event only once its inbox row is committed: a crash before that commit
    // leaves neither a row nor a turn, and the connector's redelivery runs it once. Had the turn
    // started first, a crash in between would run it twice. A failed commit runs nothing: the
    // delivery stays unacknowledged and comes again.
    const journaled = this.options.journal?.committed() ?? Promise.resolve();
    void journaled
      .then(
        () => this.runTurn(key, event, run),
        (error: unknown) => {
          run.failed = true;
          this.options.log.error(
            { session: key, err: errorMessage(error) },
            'inbox commit failed; the turn waits for the redelivery',
          );
        },
      )
      .finally(() => {
        const seconds = (performance.now() - run.startedAt) / 1000;
        if (run.stoppedBy) this.turnEvent('turn_stopped', key, run, { by: run.stoppedBy, seconds });
        else this.turnEvent(run.failed ? 'turn_failed' : 'turn_finished', key, run, { seconds });
        this.finish(
          event,
          run.stoppedBy === 'shutdown' ? 'cut_by_shutdown' : run.stoppedBy ? 'stopped' : 'answered',
          { seconds, failed: run.failed && !run.stoppedBy },
        );
        this.release(key, run);
      });
  }

  private turnEvent(
    kind: TurnEvent['kind'],
    key: string,
    run: Running,
    extra: { by?: string; seconds?: number } = {},
  ): void {
    try {
      this.options.onTurnEvent?.({
        kind,
        session: key,
        platform: run.platform,
        chat_id: run.chatId,
        ...(extra.by !== undefined ? { by: extra.by } : {}),
        ...(extra.seconds !== undefined ? { seconds: Math.round(extra.seconds * 1000) / 1000 } : {}),
      });
    } catch (error) {
      this.options.log.debug({ err: errorMessage(error) }, 'turn event listener failed');
    }
  }

  private release(key: string, run: Running): void {
    if (this.running.get(key) === run) this.running.delete(key);
    this.options.onActiveChange(this.running.size);
    const shutdown = this.options.shutdown();
    if (shutdown !== 'none' && this.options.journal) {
      // Accepted but never started: they stay pending in the inbox and run after the restart.
      this.queues.delete(key);
    } else if (shutdown !== 'none') {
      // Accepted but never started, and nowhere durable: say so rather than drop them silently.
      for (const queued of this.queues.get(key) ?? []) {
        void this.options.replies
          .sendText(
            this.targetOf(key, queued),
            shutdown === 'restarting' ? TEXTS.restarting : TEXTS.shuttingDown,
          )
          .catch(() => undefined);
      }
      this.queues.delete(key);
    }
    let next = this.queues.get(key)?.shift();
    // A queued message is a new turn: while draining it is refused like any other, after the
    // turn it waited for, so the chat reads the answer and then the refusal, in order.
    while (next && this.refusal({ internal: this.internalEvents.has(next) })) {
      const refused = next;
      this.finish(refused, 'refused');
      this.options.log.info({ session: key }, 'refusing a queued turn: the gateway is draining');
      void this.options.replies
        .sendText(this.targetOf(key, refused), TEXTS.drainRefusal)
        .catch(() => undefined);
      next = this.queues.get(key)?.shift();
    }
    if (this.queues.get(key)?.length === 0) this.queues.delete(key);
    if (next) {
      this.start(key, next);
      return;
    }
    if (this.running.size === 0) for (const waiter of [...this.idleWaiters]) waiter();
  }

  private async runTurn(key: string, event: MessageEvent, run: Running): Promise<void> {
    const { agent, history, replies, log } = this.options;
    const target = this.targetOf(key, event);
    const message: ConversationMessage = { role: 'user', content: event.text };
    const stream = replies.stream(target);
    const typing = setInterval(() => void replies.typing(target).catch(() => undefined), 4_000);
    try {
      // A press on a question this process no longer waits for (timed out, or asked before a
      // restart) is answered here without a turn; a repeat, or another gateway's question, is
      // ignored (current §7.4).
      const press = event.prompt_response ? replies.promptAnswered(event.prompt_response.prompt_id) : 'none';
      if (press === 'expired') {
        await replies.sendText(target, ACTION_TEXTS.pressTooLate);
        return;
      }
      if (press === 'ignore') return;
      void replies.typing(target).catch(() => undefined);
      const past = agent.usesHistory === false ? [] : history.load(key, HISTORY_TURNS);
      const seen = this.options.localizeMedia ? await this.options.localizeMedia(event) : event;
      if (run.controller.signal.aborted) return;
      run.started = true;
      const inboxId = this.inboxIds.get(event);
      let handedOver = false;
      const markStarted = () => {
        if (handedOver) return;
        handedOver = true;
        if (inboxId !== undefined) this.options.journal?.started(inboxId);
      };
      if (!agent.reportsHandover) markStarted();
      const result = await agent.run({
        onHandedOver: markStarted,
        sessionKey: key,
        history: past,
        message,
        event: seen,
        platformHint: replies.descriptor().platform_hint,
        signal: run.controller.signal,
        onProgress: (text) => stream.update(text),
      });
      if (run.controller.signal.aborted) return;
      const actions = result.actions ?? [];
      if (result.text.trim() !== '' || actions.length === 0)
        await stream.finish(result.text.trim() === '' ? '(the agent returned an empty reply)' : result.text);
      else stream.cancel();
      if (actions.length > 0) await replies.perform(target, event, actions);
      // A slash command's "thinking…" reply waits for a follow-up: a turn that only acted (buttons,
      // a file in the channel) still replaces it. A press has no such reply (its source names the
      // pressed message).
      if (result.text.trim() === '' && actions.length > 0 && target.followUp && !event.source.message_id)
        await replies.sendText(target, ACTION_TEXTS.done);
      history.append(key, [message, { role: 'assistant', content: result.text }]);
    } catch (error) {
      if (run.controller.signal.aborted || (error as Error).name === 'AbortError') {
        log.info({ session: key, by: run.stoppedBy }, 'turn stopped');
        if (run.stoppedBy === 'shutdown')
          await replies.sendText(
            target,
            this.options.shutdown() === 'restarting'
              ? "⚠️ Gateway restarting — Your current task will be interrupted. Send any message after restart and I'll try to resume where you left off."
              : '⚠️ Gateway shutting down — Your current task will be interrupted.',
          );
        return;
      }
      run.failed = true;
      log.warn({ session: key, err: errorMessage(error) }, 'agent turn failed');
      await replies.sendText(target, `⚠️ ${errorMessage(error)}`);
    } finally {
      clearInterval(typing);
      stream.cancel();
    }
  }
}

export class GatewayStoppingError extends Error {
  constructor() {
    super('gateway is shutting down; deliver again after the restart');
    this.name = 'GatewayStoppingError';
  }
}

/** `/stop` as a slash command, for chats with a command menu (the gateway declares it on Discord). */
export const STOP_COMMAND = { name: 'stop', description: 'Stop the reply running in this chat' } as const;

function isStopCommand(text: string): boolean {
  // Telegram appends the bot name in groups: /stop@my_bot.
  return /^\/stop(@\S+)?\s*$/i.test(text.trim());
}

/**
 * Where the reply goes, with the discriminators learned from the inbound (current §7.1): the
 * connector resolves the owning tenant from `scope_id`, then `user_id` (the only one a DM has).
 * An event answered through a follow-up capability (a Discord interaction) carries it, named by
 * the session key; its `message_id` is the interaction's, not a message's, so replies anchor on
 * the message it came from (a pressed button's), if any.
 */
function replyTarget(event: MessageEvent, sessionKey: string, followUpKind?: string): ReplyTarget {
  const metadata: Record<string, unknown> = {};
  const { thread_id: threadId, scope_id: scopeId, user_id: userId } = event.source;
  if (threadId) metadata.thread_id = threadId;
  if (scopeId) metadata.scope_id = scopeId;
  if (userId) metadata.user_id = userId;
  if (!followUpKind) return { chatId: event.source.chat_id, replyTo: event.message_id ?? null, metadata };
  return {
    chatId: event.source.chat_id,
    replyTo: event.source.message_id ?? null,
    metadata,
    followUp: { sessionKey, kind: followUpKind },
  };
}
