import type { CommandManifest, MediaKind, MessageEvent } from '../../protocol/index.js';

/** One message of a conversation, as agents and the history store see it. */
export interface ConversationMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface AgentTurnInput {
  sessionKey: string;
  /** Earlier turns of this session, oldest first (already trimmed to a sane length). */
  history: ConversationMessage[];
  /** The new user message. */
  message: ConversationMessage;
  /** The platform event the message came from (source, ids). */
  event: MessageEvent;
  /** Platform hint from the descriptor, for a system prompt. */
  platformHint: string;
  /** Aborted by `/stop`, an interrupt delivery, or a shutdown that ran out of drain time. */
  signal: AbortSignal;
  /** Streaming progress: called with the whole reply text so far (not a delta), as it grows. */
  onProgress?: (textSoFar: string) => void;
  /**
   * For agents with `reportsHandover`: called once the agent has the turn (a command agent: its
   * whole input is in its stdin pipe). The durable inbox counts the turn as started only then, so a
   * crash before it replays the turn instead of dropping it.
   */
  onHandedOver?: () => void;
}

export interface AgentTurnResult {
  text: string;
  /** What the agent does besides answering: files, a question with buttons, a reaction. */
  actions?: AgentAction[];
}

/**
 * An agent's non-text output (current §7.2–§7.5). The gateway turns each into the op the platform
 * advertises, or says in text what the platform cannot show.
 */
export type AgentAction =
  | {
      kind: 'media';
      mediaKind: MediaKind;
      /** Bytes are uploaded to the connector first; an https URL is passed on as it is. */
      file: { bytes: Uint8Array; filename: string; mime: string } | { url: string; filename?: string };
      caption?: string;
    }
  | {
      kind: 'prompt';
      text: string;
      options: { id: string; label: string; style?: 'primary' | 'success' | 'danger' | 'secondary' }[];
      promptKind?: 'approval' | 'clarify' | 'choice';
      /** How long the question waits for a press (default 3600 s). */
      timeoutSeconds?: number;
    }
  | { kind: 'react'; emoji: string; remove?: boolean }
  /** A new thread (forum topic) in the chat, named `name`. */
  | { kind: 'thread'; name: string };

/**
 * An agent runs one turn at a time per session (the session manager guarantees that). It must stop
 * promptly when `signal` aborts — rejecting with an error whose `name` is `AbortError` — and it
 * must not throw for anything else it can describe: a failed upstream is a rejected promise with a
 * message fit to show the user (no secrets).
 */
export interface Agent {
  readonly name: string;
  /** True when `run` calls `onHandedOver`; otherwise the turn counts as started when `run` is called. */
  readonly reportsHandover?: boolean;
  /**
   * False when `run` never reads `input.history` (the echo agent): the session manager then skips
   * loading it, a SQLite read on every turn's way to the agent. The turn is still appended, so a
   * switch to another agent keeps the conversation. Default true.
   */
  readonly usesHistory?: boolean;
  /**
   * Slash commands the agent understands, offered where a chat has a command menu (a gateway
   * fronting Discord declares them in its `hello`, current §4.1). Options are Discord's.
   */
  readonly commands?: CommandManifest;
  run(input: AgentTurnInput): Promise<AgentTurnResult>;
  close?(): Promise<void>;
}

/** Conversation history per session, kept in `$HERMES_HOME` so a restart keeps context. */
export interface HistoryStore {
  /** The last `limit` messages of the session, oldest first. */
  load(sessionKey: string, limit: number): ConversationMessage[];
  append(sessionKey: string, messages: ConversationMessage[]): void;
  close(): void;
}

export function abortError(message = 'turn interrupted'): Error {
  const error = new Error(message);
  error.name = 'AbortError';
  return error;
}
