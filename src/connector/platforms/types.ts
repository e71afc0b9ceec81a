import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type {
  CapabilityDescriptor,
  CommandManifest,
  EditAction,
  FollowUpAction,
  GetChatInfoAction,
  MediaItem,
  MessageEventInit,
  OutboundResult,
  PassthroughForward,
  PromptAction,
  ReactAction,
  SendAction,
  SendMediaAction,
  ThreadCreateAction,
  ThreadRenameAction,
  TypingAction,
} from '../../protocol/index.js';
import type { MediaMeta } from '../media.js';

/**
 * A chat platform as the connector sees it. Adding Discord or Slack means one file implementing
 * this. The connector owns routing, tenancy, durability and splitting; an adapter only translates
 * between the platform and `MessageEvent`s / outbound actions.
 */

/** A normalised inbound message, before routing. */
export interface PlatformInbound {
  /** The discriminator that picks the tenant (Telegram chat id, web-chat room, Discord guild). */
  routeKey: string;
  event: MessageEventInit;
  /**
   * The message is addressed to the bot (a command, a mention, a reply to it): what a relevance
   * policy's `requireAddress` asks for in groups. Unset counts as not addressed.
   */
  addressed?: boolean;
  /**
   * A verified platform webhook to forward as received (current §12: Discord interactions): the
   * gateway gets it as a `passthrough_forward` frame instead of the event, which still names the
   * chat and session it belongs to (its order, its `/stop`). Only gateways on a socket take one.
   */
  passthrough?: PassthroughForward;
  /**
   * Files of the message (a photo, a voice note, a document): re-hosted on this connector under the
   * routed tenant before the event is queued (current §7.3), so a gateway never needs a platform
   * credential; the event then carries their `/relay/media/{id}` URLs in `media_urls` and `media`.
   * One that cannot be fetched is dropped, the rest of the message still goes.
   */
  attachments?: InboundAttachment[];
  /**
   * The platform's own id for this message (e.g. `discord:<app>:message:<id>`): queued at most once
   * within {@link INGEST_DEDUPE_TTL_MS}, on any instance, atomically with the queueing, so a replay
   * (a Discord RESUME after a takeover) cannot queue it twice. A repeat answers `duplicate`.
   */
  dedupeKey?: string;
  /** How long this `dedupeKey` is remembered, when not {@link INGEST_DEDUPE_TTL_MS}. */
  dedupeTtlMs?: number;
  /**
   * Runs once the message is routed, before it is queued (so before any gateway can see it): e.g.
   * binding a Discord interaction token to the session the gateway will name in `follow_up`. A
   * throw fails the ingest (`store_error`).
   */
  beforeQueue?(placement: { tenantId: string; sessionKey: string }): Promise<void>;
}

/** How long an ingested `dedupeKey` is remembered. */
export const INGEST_DEDUPE_TTL_MS = 60 * 60_000;

export interface InboundAttachment {
  kind: 'image' | 'voice' | 'audio' | 'video' | 'document' | 'sticker';
  mime?: string;
  filename?: string;
  /** The file's bytes from the platform (its URL may hold a credential: never logged). */
  open(): Promise<Readable>;
}

export type IngestOutcome =
  | {
      ok: true;
      deliveryId: string;
      tenantId: string;
      sessionKey: string;
      /** The attachments as re-hosted (`url` = `…/relay/media/{id}`), in order; dropped ones left out. */
      media?: MediaItem[];
    }
  | {
      ok: false;
      /**
       * `unsupported`: a passthrough for a route whose gateway takes signed POSTs (June generation),
       * or a message of only files none of which could be stored. Not worth retrying.
       * `duplicate`: its `dedupeKey` was queued before; nothing was queued now.
       */
      reason: 'no_route' | 'store_error' | 'irrelevant' | 'unsupported' | 'duplicate';
      message: string;
    };

export interface PlatformContext {
  /**
   * Route, persist and queue an inbound message. Resolves only once it is durably in the outbox,
   * so an adapter acknowledges the platform (e.g. advances the Telegram offset) after this.
   */
  ingest(inbound: PlatformInbound): Promise<IngestOutcome>;
  log: Logger;
  /**
   * This instance now holds (or no longer holds) the platform connection of a chat, e.g. a web-chat
   * visitor's socket. In a cluster, ops for the chat are then sent to this instance.
   */
  chatHeld?(chatId: string, held: boolean): void;
  /** A re-hosted media file by id (shared by every instance), or null when it is gone. */
  openMedia?(id: string): { meta: MediaMeta; stream: () => Readable } | null;
  /** Small values with an expiry, shared by every connector instance and kept across restarts. */
  state?: PlatformState;
}

/** The store's platform state, for adapters (keys are theirs to namespace, e.g. `discord:…`). */
export interface PlatformState {
  /** The value, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  put(key: string, value: string, ttlMs: number): Promise<void>;
  /** Store unless a live value is there; true when stored (one winner across instances). */
  insert(key: string, value: string, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/** What a gateway's `hello` declared as slash commands, for the tenant whose routes are listed. */
export interface CommandDeclaration {
  tenantId: string;
  /** The tenant's route keys on the platform (guild ids, DM channels, or `*`). */
  routeKeys: string[];
  manifest: CommandManifest;
}

export interface PlatformAdapter {
  /** The platform name in `source.platform` and route rows, e.g. `webchat`, `telegram`. */
  readonly name: string;
  /** The descriptor sent to gateways fronting this platform (without `supported_ops`, derived). */
  descriptor(): Omit<CapabilityDescriptor, 'supported_ops'>;

  /**
   * Called on every connector instance before `start`, also where a cluster never starts the
   * adapter (another instance holds its lease): for what any instance serves, e.g. a webhook.
   */
  attach?(context: PlatformContext): void;
  start(context: PlatformContext): Promise<void>;
  stop(): Promise<void>;

  /** `content` is already within the platform limit; the connector splits longer content first. */
  send(action: SendAction): Promise<OutboundResult>;
  /**
   * Run the calls that make one op on one chat (the parts of a long text) as one unit: where the
   * adapter orders or rate-limits a chat's ops, the parts keep the op's place and its time budget
   * instead of each queueing anew (other ops of the chat never land between them).
   */
  asOneOp?<T>(chatId: string, work: () => Promise<T>): Promise<T>;
  edit?(action: EditAction): Promise<OutboundResult>;
  typing?(action: TypingAction): Promise<OutboundResult>;
  getChatInfo?(action: GetChatInfoAction): Promise<OutboundResult>;
  /**
   * A file to the chat. Its `source_url` was checked by the connector: a re-host of this tenant
   * (open it with `PlatformContext.openMedia`) or a public `https` URL.
   */
  sendMedia?(action: SendMediaAction): Promise<OutboundResult>;
  /** Options as buttons whose presses come back as inbound `prompt_response` events. */
  prompt?(action: PromptAction): Promise<OutboundResult>;
  react?(action: ReactAction): Promise<OutboundResult>;
  /** A thread (forum topic) under the chat; the result carries `thread_id`. */
  createThread?(action: ThreadCreateAction): Promise<OutboundResult>;
  renameThread?(action: ThreadRenameAction): Promise<OutboundResult>;
  /**
   * Answer through a capability the connector holds for the session (current §7.2 `follow_up`):
   * never a token from the gateway; `tenantId` is the caller's, checked against the capability's.
   */
  followUp?(tenantId: string, action: FollowUpAction): Promise<OutboundResult>;
  /** A gateway declared slash commands (current §4.1 `command_manifest`): register them if changed. */
  registerCommands?(declaration: CommandDeclaration): Promise<void>;

  /** True when this instance holds the chat's connection; only for adapters with per-instance chats. */
  holdsChat?(chatId: string): boolean;
  /**
   * Name of a lease for adapters that must run on one connector instance at a time (a bot's long
   * poll). In a cluster the adapter is started only while this instance holds the lease.
   */
  exclusiveLease?(): string;

  /** Routes served on the connector's HTTP server (web chat page, webhooks). */
  registerRoutes?(app: FastifyInstance): void | Promise<void>;
  /** Take a WebSocket upgrade for a path this adapter owns; false leaves it to others. */
  handleUpgrade?(request: IncomingMessage, socket: Duplex, head: Buffer): boolean;
}
