import { createRequire } from 'node:module';
import { escapeHtml, htmlDocument } from '../../../http/html.js';
import { readAsset, readWebAsset, type StaticAsset, versionedUrl } from '../../../http/static-assets.js';

/**
 * The web chat page's server side: the HTML shell of `/chat/:room` and the static files under
 * `/chat/assets/`. The browser code lives in `web/` (`app.ts`, `markdown.ts`, `app.css`), built into
 * `dist/web/` by `tsconfig.web.json`; Markdown is markdown-it's browser build from node_modules. No
 * framework, no network access beyond the page's own origin (system fonts, inline SVG).
 *
 * The browser ⇄ server frames are described in `web/app.ts`.
 */

/** Largest browser frame the server accepts (bytes); the page checks it before sending. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** Longest message a visitor may send, in Unicode code points. */
export const MAX_TEXT_CHARS = 8000;

/** Where the assets are served. */
export const WEBCHAT_ASSETS_PREFIX = '/chat/assets/';

const MARKDOWN_IT = 'markdown-it.umd.min.js';

let assets: Readonly<Record<string, StaticAsset>> | undefined;

/**
 * The page's static files (name → asset under `/chat/assets/`), read on first use and kept: the
 * page script and its Markdown module, the style sheet, and markdown-it's browser build (which
 * defines the global `markdownit` the Markdown module uses).
 */
export function webchatAssets(): Readonly<Record<string, StaticAsset>> {
  assets ??= {
    'app.js': readWebAsset('connector/platforms/webchat/web/app.js'),
    'markdown.js': readWebAsset('connector/platforms/webchat/web/markdown.js'),
    'app.css': readWebAsset('connector/platforms/webchat/web/app.css'),
    [MARKDOWN_IT]: readAsset(createRequire(import.meta.url).resolve('markdown-it/browser')),
  };
  return assets;
}

function assetUrl(name: string): string {
  const asset = webchatAssets()[name];
  if (!asset) throw new Error(`web chat asset ${name} is unknown`);
  return versionedUrl(WEBCHAT_ASSETS_PREFIX, name, asset);
}

const CHAT_ICON =
  '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
  'stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6' +
  'A8 8 0 1 1 21 12z"/></svg>';
const SEND_ICON =
  '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
  'stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M22 2 11 13"/>' +
  '<path d="M22 2 15 22l-4-9-9-4 20-7z"/></svg>';

/** The document around a page's body: the style sheet, and `scripts` when the page runs code. */
function shell(title: string, body: string, scripts = false): string {
  return htmlDocument(
    {
      title,
      viewportFitCover: true,
      // A visitor's browser would otherwise ask the connector for /favicon.ico and log its 404.
      noFavicon: true,
      stylesheets: [assetUrl('app.css')],
      ...(scripts ? { deferredScripts: [assetUrl(MARKDOWN_IT)], modules: [assetUrl('app.js')] } : {}),
    },
    body,
  );
}

/** The chat page for one room. `room` must already be validated. */
export function renderChatPage(options: { room: string; title: string }): string {
  const room = escapeHtml(options.room);
  const title = escapeHtml(options.title);
  return shell(
    `${options.title} · ${options.room}`,
    `<div class="app" id="chat" data-room="${room}" data-max-chars="${MAX_TEXT_CHARS}" data-max-bytes="${MAX_FRAME_BYTES}">
  <header class="top">
    <div class="brand">
      <span class="logo">${CHAT_ICON}</span>
      <div>
        <h1>${title}</h1>
        <p class="room">Room <strong>${room}</strong></p>
      </div>
    </div>
    <p class="status" id="status" role="status" data-state="connecting">
      <span class="dot" aria-hidden="true"></span><span class="sr-only">Connection: </span><span id="status-text">connecting…</span>
    </p>
  </header>
  <main class="scroller" id="scroller">
    <div class="column">
      <div class="empty" id="empty">
        <p class="empty-title">Say hello 👋</p>
        <p>Your messages go to the agent connected to room <strong>${room}</strong>.</p>
        <p>Send <code>/stop</code> to interrupt a long reply.</p>
      </div>
      <ol class="messages" id="messages" aria-label="Messages"></ol>
      <div class="typing" id="typing" hidden><span class="dots" aria-hidden="true"><i></i><i></i><i></i></span>Agent is typing…</div>
    </div>
  </main>
  <footer class="composer-wrap">
    <form class="composer column" id="composer">
      <input class="sr-only" id="file" type="file" multiple tabindex="-1" aria-hidden="true">
      <button class="attach" id="attach" type="button" aria-label="Attach a file" title="Attach a file (or drop it on the chat)">📎</button>
      <label class="sr-only" for="input">Message</label>
      <textarea id="input" rows="1" placeholder="Message the agent…" autocomplete="off" enterkeyhint="send" aria-describedby="hint"></textarea>
      <button class="send" id="send" type="submit" aria-label="Send message" disabled>${SEND_ICON}</button>
    </form>
    <p class="hint column" id="hint">Enter to send · Shift+Enter for a new line · 📎 or drop a file to send it</p>
    <p class="error column" id="error" role="alert" hidden></p>
  </footer>
  <div class="sr-only" id="live" aria-live="polite" aria-atomic="true"></div>
</div>`,
    true,
  );
}

/** Shown for a room name that is not `^[A-Za-z0-9_-]{1,64}$`. */
export function renderNotFoundPage(title: string): string {
  return shell(
    `Chat room not found · ${title}`,
    `<main class="column empty">
  <h1 class="empty-title">Chat room not found</h1>
  <p>Room names use 1 to 64 letters, digits, <code>-</code> or <code>_</code>.</p>
  <p><a href="/chat/demo">Open the demo room</a></p>
</main>`,
  );
}
