/**
 * A minimal platform adapter: the terminal as a chat platform. Each line typed on stdin is one
 * message from the user "you" in the chat "console"; each reply the agent sends is printed on
 * stdout. Route it with `addRoute(store, { tenantRef, platform: 'local', routeKey: 'console' })`
 * and hand it to `startConnector` beside the built-in adapters (see embed-connector.ts).
 */
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { PlatformAdapter, PlatformContext } from 'hermes-relay/connector';
import {
  type CapabilityDescriptor,
  CONTRACT_VERSION,
  type EditAction,
  type OutboundResult,
  type SendAction,
} from 'hermes-relay/protocol';

export interface ConsoleAdapterOptions {
  /** Where the user types (default: stdin). */
  input?: Readable;
  /** Where the agent's replies appear (default: stdout). */
  output?: Writable;
}

export class ConsoleAdapter implements PlatformAdapter {
  /**
   * The platform name in routes and in every event's `source.platform`. Gateways build session keys
   * with the names they know (`KNOWN_PLATFORMS` in hermes-relay/protocol) and any other as `relay`:
   * `local` is the known name for a machine's own console.
   */
  readonly name = 'local';
  private readonly input: Readable;
  private readonly output: Writable;
  private lines: Interface | undefined;
  private sent = 0;
  private received = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(options: ConsoleAdapterOptions = {}) {
    this.input = options.input ?? process.stdin;
    this.output = options.output ?? process.stdout;
  }

  /** What gateways are told about this platform; the connector adds `supported_ops` itself. */
  descriptor(): Omit<CapabilityDescriptor, 'supported_ops'> {
    return {
      contract_version: CONTRACT_VERSION,
      platform: this.name,
      label: 'Console',
      max_message_length: 4000,
      len_unit: 'chars',
      supports_draft_streaming: false,
      supports_edit: true,
      supports_threads: false,
      markdown_dialect: 'plain',
      emoji: '\u{1F5A5}\uFE0F',
      platform_hint: 'You are chatting in a terminal: plain text only.',
      pii_safe: false,
      supports_context: false,
      supports_inchannel_continuable: false,
      supports_block_formatting: false,
    };
  }

  /** Inbound: each line becomes a `MessageEvent` handed to the connector. */
  async start(context: PlatformContext): Promise<void> {
    this.lines = createInterface({ input: this.input });
    this.lines.on('line', (line) => {
      const text = line.trim();
      if (!text) return;
      this.received += 1;
      const id = String(this.received);
      // One chat's messages are ingested one after another, so they reach the agent in order.
      this.queue = this.queue.then(() => this.ingest(context, text, id));
    });
  }

  private async ingest(context: PlatformContext, text: string, id: string): Promise<void> {
    const outcome = await context.ingest({
      // Picks the tenant: the route (platform "local", key "console").
      routeKey: 'console',
      // A one-to-one chat: every message is addressed to the bot.
      addressed: true,
      // Queued at most once, even if the same message were handed in twice.
      dedupeKey: `console:${process.pid}:${id}`,
      event: {
        text,
        message_type: text.startsWith('/') ? 'command' : 'text',
        message_id: id,
        source: {
          platform: this.name,
          chat_id: 'console',
          chat_type: 'dm',
          user_id: 'you',
          user_name: 'you',
        },
      },
    });
    // `ingest` resolves once the message is durably queued (and never throws): only then would a
    // real platform be acknowledged. `store_error` is the one outcome worth trying again.
    if (!outcome.ok) this.output.write(`(not delivered: ${outcome.reason}: ${outcome.message})\n`);
  }

  async stop(): Promise<void> {
    this.lines?.close();
    this.lines = undefined;
  }

  /** Outbound: the connector has checked the chat belongs to the gateway's tenant and split long text. */
  async send(action: SendAction): Promise<OutboundResult> {
    this.sent += 1;
    this.output.write(`agent: ${action.content}\n`);
    return { success: true, message_id: `out-${this.sent}` };
  }

  /** Optional ops are optional methods: without `edit`, `supported_ops` leaves `edit` out. */
  async edit(action: EditAction): Promise<OutboundResult> {
    this.output.write(`agent (edited ${action.message_id}): ${action.content}\n`);
    return { success: true, message_id: action.message_id };
  }
}
