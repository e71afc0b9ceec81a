/**
 * The event-stream client shared by the dashboard and the connector admin console (browser code).
 * Both read their `text/event-stream` with `fetch()` streaming — EventSource cannot send an
 * `Authorization` header — so both need the same block parser, the same stall limit and the same
 * reconnect wait; they are here once.
 *
 * Loading: each server serves this file (compiled to `dist/web/http/web/sse.js`) beside its page
 * script, as `sse.js`, and `common/backoff.js` as `backoff.js` (`sharedWebModules` in
 * `src/http/static-assets.ts`). The page scripts import `./sse.js` and this file imports
 * `./backoff.js`: a relative specifier resolves next to the importing script's URL, so it works
 * under `/admin/assets/` and under the dashboard's relative `assets/` (behind a path prefix) alike.
 * `tsconfig.web.json` lists these folders in `rootDirs`, so the type checker resolves the same
 * specifiers to `src/http/web/sse.ts` and `src/common/backoff.ts`.
 */

import { type BackoffPolicy, backoffDelay } from './backoff.js';

/** One event of a stream: its `event:` name (`message` when it has none) and its `data:` lines. */
export interface StreamEvent {
  readonly event: string;
  /** The `data:` lines joined by `\n`. */
  readonly data: string;
}

/** How long a live stream may stay silent (both servers ping every 15 s) before it is dropped. */
export const STALE_STREAM_MS = 45_000;

/** The pages' reconnect waits: 1 s doubling to 30 s, each in [half, all] of its step. */
export const RECONNECT_POLICY: BackoffPolicy = { baseMs: 1000, capMs: 30_000, jitter: 'equal' };

/** The wait in whole ms before the next connect, after `failures` (0, 1, …) failed ones in a row. */
export function reconnectDelay(failures: number, random: () => number = Math.random): number {
  return Math.round(backoffDelay(failures + 1, RECONNECT_POLICY, random));
}

/**
 * One event from a block (the lines between two blank lines, without `\r`): `event:` names it,
 * `data:` lines make its data, comments (`:` lines, the servers' pings) and other fields are
 * skipped. `null` for a block without data.
 */
export function parseEventBlock(block: string): StreamEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 ? null : { event, data: data.join('\n') };
}

/** The event's data as JSON, or `undefined` when it is not JSON. */
export function eventJson(event: StreamEvent): unknown {
  try {
    return JSON.parse(event.data) as unknown;
  } catch {
    return undefined;
  }
}

export interface StreamHandlers {
  /** Called for each event, in order. An exception skips that event only (it is logged). */
  onEvent(event: StreamEvent): void;
  /** Called for every chunk received, pings included (to notice a stalled stream). */
  onChunk?(): void;
}

/**
 * Read a `text/event-stream` body to its end, handing over each event. Resolves when the stream
 * ends, fails or is aborted (through the fetch's signal); never rejects.
 */
export async function readEventStream(
  body: NonNullable<Response['body']>,
  handlers: StreamHandlers,
): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      handlers.onChunk?.();
      buffer += value.replace(/\r/g, '');
      for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
        const event = parseEventBlock(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (!event) continue;
        try {
          handlers.onEvent(event);
        } catch (error) {
          console.error(`event stream: the ${event.event} event was skipped`, error);
        }
      }
    }
  } catch {
    // aborted, or the network failed: the caller reconnects
  }
}
