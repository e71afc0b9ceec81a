import { type FSWatcher, statSync, watch } from 'node:fs';
import type { FastifyReply } from 'fastify';
import { type ActivityEvent, activityPath, readActivity } from '../home/activity-log.js';
import { securityHeadersFor } from '../http/security-headers.js';

/**
 * Server-Sent Events for `/api/events`: a `status` event whenever the gateway's state, running
 * flag, active turns or platforms change (watched via the home directory with a poll fallback),
 * an `action` event for drain / cancel / restart / stop-turn requests, and an `activity` event with
 * the entries the gateway appended to `activity.jsonl` since the last one (`{events: [...]}`).
 */

const POLL_MS = 500;
const HEARTBEAT_MS = 15_000;
const MAX_CLIENTS = 100;

export class EventHub {
  private readonly clients = new Set<FastifyReply>();
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private last = '';
  private debounce: NodeJS.Timeout | undefined;
  private activityStamp = '';
  private lastActivityId: string | undefined;

  constructor(
    private readonly home: string,
    private readonly snapshot: () => Record<string, unknown>,
  ) {}

  start(): void {
    this.lastActivityId = readActivity(this.home).at(-1)?.id;
    this.activityStamp = this.stampOfActivity();
    try {
      this.watcher = watch(this.home, (_event, name) => {
        if (name && !String(name).startsWith('gateway') && !String(name).startsWith('activity')) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.check(), 20);
      });
      this.watcher.on('error', () => undefined);
    } catch {
      // The home may not exist yet; the poll covers it.
    }
    this.poll = setInterval(() => this.check(), POLL_MS);
    this.heartbeat = setInterval(() => this.broadcastRaw(': keepalive\n\n'), HEARTBEAT_MS);
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    clearTimeout(this.debounce);
    for (const client of this.clients) client.raw.end();
    this.clients.clear();
  }

  /** Take over a request as an event stream. False when too many are open. */
  add(reply: FastifyReply): boolean {
    if (this.clients.size >= MAX_CLIENTS) return false;
    reply.hijack();
    // A hijacked answer skips fastify's onSend hooks: the security headers go on by hand.
    securityHeadersFor(reply.raw);
    // A write racing a client that went away must not become an unhandled 'error' event.
    reply.raw.on('error', () => this.clients.delete(reply));
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    reply.raw.write(`retry: 2000\nevent: status\ndata: ${JSON.stringify(this.snapshot())}\n\n`);
    this.clients.add(reply);
    reply.raw.on('close', () => this.clients.delete(reply));
    return true;
  }

  action(payload: Record<string, unknown>): void {
    this.broadcastRaw(`event: action\ndata: ${JSON.stringify(payload)}\n\n`);
    this.check();
  }

  private check(): void {
    const snapshot = this.snapshot();
    const key = JSON.stringify([
      snapshot.gateway_running,
      snapshot.gateway_state,
      snapshot.active_agents,
      snapshot.gateway_platforms,
      // The running turns (not their elapsed time, which changes every second) and the relay.
      Array.isArray(snapshot.turns)
        ? snapshot.turns.map((turn: { session?: unknown; started_at?: unknown }) => [
            turn.session,
            turn.started_at,
          ])
        : null,
      snapshot.relay,
    ]);
    this.checkActivity();
    if (key === this.last) return;
    this.last = key;
    this.broadcastRaw(`event: status\ndata: ${JSON.stringify(snapshot)}\n\n`);
  }

  private stampOfActivity(): string {
    try {
      const stat = statSync(activityPath(this.home));
      return `${stat.size}:${stat.mtimeMs}:${stat.ino}`;
    } catch {
      return '';
    }
  }

  /** New activity entries since the last broadcast (the file is read only when it changed). */
  private checkActivity(): void {
    const stamp = this.stampOfActivity();
    if (stamp === this.activityStamp) return;
    this.activityStamp = stamp;
    const all = readActivity(this.home);
    const at = this.lastActivityId ? all.findIndex((event) => event.id === this.lastActivityId) : -1;
    const fresh: ActivityEvent[] = at >= 0 ? all.slice(at + 1) : all;
    if (fresh.length === 0) return;
    this.lastActivityId = fresh.at(-1)?.id;
    this.broadcastRaw(`event: activity\ndata: ${JSON.stringify({ events: fresh })}\n\n`);
  }

  private broadcastRaw(text: string): void {
    for (const client of this.clients) client.raw.write(text);
  }
}
