import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { errorMessage } from '../../common/errors.js';
import { securityHeadersFor } from '../../http/security-headers.js';
import type { OutboxDepthView, OverviewView } from '../admin.js';

/**
 * `GET /admin/api/events`: a `snapshot` event on connect and whenever the snapshot changes (checked
 * every {@link CHECK_MS} while anyone listens; the clock fields `at` and `uptimeSeconds` alone are
 * not a change), and a `: ping` comment every {@link PING_MS} so proxies keep the stream open.
 */

export const CHECK_MS = 2_000;
export const PING_MS = 15_000;
const MAX_CLIENTS = 20;

export interface AdminSnapshot {
  at: string;
  overview: OverviewView;
  gateways: {
    id: string;
    tenant: string;
    connected: boolean;
    revoked: boolean;
    idleSince: string | null;
    buffered: number;
    lastSeen: string | null;
  }[];
  outbox: OutboxDepthView[];
}

/** What counts as a change: everything but the clock. */
function changeKey(snapshot: AdminSnapshot): string {
  const { at: _at, overview, ...rest } = snapshot;
  const { uptimeSeconds: _uptime, ...counts } = overview;
  return JSON.stringify({ counts, ...rest });
}

export class AdminEvents {
  readonly #clients = new Set<FastifyReply>();
  #check: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  #lastKey = '';
  #checking = false;
  #again = false;

  constructor(
    private readonly snapshot: () => Promise<AdminSnapshot>,
    private readonly log: Logger,
    private readonly timing: { checkMs?: number; pingMs?: number } = {},
  ) {}

  get listeners(): number {
    return this.#clients.size;
  }

  /** Take over the request as an event stream; false when too many are open. */
  async add(reply: FastifyReply): Promise<boolean> {
    if (this.#clients.size >= MAX_CLIENTS) return false;
    // A client gone while its first snapshot is read must not be added (it would never be dropped).
    let gone = false;
    reply.raw.once('close', () => {
      gone = true;
    });
    const first = await this.snapshot();
    if (gone || reply.raw.destroyed) return true;
    reply.hijack();
    // A hijacked answer skips fastify's onSend hooks: the security headers go on by hand.
    securityHeadersFor(reply.raw);
    reply.raw.on('error', () => this.#drop(reply));
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    reply.raw.write(`retry: 2000\n${frame(first)}`);
    this.#clients.add(reply);
    reply.raw.on('close', () => this.#drop(reply));
    if (this.#clients.size === 1) {
      this.#lastKey = changeKey(first);
      this.#start();
    }
    return true;
  }

  /**
   * Something was changed (an API mutation): check now rather than at the next tick, so a change
   * and its undoing within one interval are not both missed. Coalesced; a no-op without listeners.
   */
  changed(): void {
    if (this.#clients.size === 0) return;
    if (this.#checking) {
      this.#again = true;
      return;
    }
    void this.#tick();
  }

  stop(): void {
    clearInterval(this.#check);
    clearInterval(this.#ping);
    this.#check = undefined;
    this.#ping = undefined;
    for (const client of this.#clients) client.raw.end();
    this.#clients.clear();
  }

  #start(): void {
    this.#check = setInterval(() => void this.#tick(), this.timing.checkMs ?? CHECK_MS);
    this.#check.unref();
    this.#ping = setInterval(() => this.#broadcast(': ping\n\n'), this.timing.pingMs ?? PING_MS);
    this.#ping.unref();
  }

  #drop(reply: FastifyReply): void {
    this.#clients.delete(reply);
    if (this.#clients.size > 0) return;
    clearInterval(this.#check);
    clearInterval(this.#ping);
    this.#check = undefined;
    this.#ping = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#checking || this.#clients.size === 0) return;
    this.#checking = true;
    try {
      const next = await this.snapshot();
      const key = changeKey(next);
      if (key === this.#lastKey) return;
      this.#lastKey = key;
      this.#broadcast(frame(next));
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'admin console snapshot failed');
    } finally {
      this.#checking = false;
      if (this.#again) {
        this.#again = false;
        void this.#tick();
      }
    }
  }

  #broadcast(text: string): void {
    for (const client of this.#clients) client.raw.write(text);
  }
}

function frame(snapshot: AdminSnapshot): string {
  return `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
}
