import { createHash } from 'node:crypto';

/**
 * The web chat page: HTML, CSS and browser JS as plain strings. No build step, no framework, no
 * network access beyond the page's own origin (system fonts, inline SVG).
 *
 * Browser ⇄ server frames (JSON text over `/chat/ws?room=R&visitor=V`):
 * - browser → server: `{type:'message', text, clientId?}`
 * - server → browser: `{type:'history', messages}` on connect; `{type:'message', message, clientId?}`
 *   for a new user, agent or system message; `{type:'edit', message_id, text}`; `{type:'ack',
 *   message_id}` (queued for the agent); `{type:'failed', message_id}`; `{type:'typing', on}`;
 *   `{type:'error', message}` for input the server refused. A new agent message ends "typing".
 */

/** Largest browser frame the server accepts (bytes); the page checks it before sending. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** Longest message a visitor may send, in Unicode code points. */
export const MAX_TEXT_CHARS = 8000;

/**
 * A safe Markdown subset for agent messages. Everything is HTML-escaped first; then code fences
 * (with a language label and a copy button), inline code, `**bold**`, `*italic*`/`_italic_`,
 * `~~strike~~`, `# headings` (as bold lines), `- bullets`, `[links](https://…)` and bare http(s) URLs
 * (nothing but http and https ever becomes a link; links open in a new tab with `rel=noopener`), and
 * line breaks. An unterminated fence renders as code to the end, so a streamed reply looks right
 * while it grows.
 *
 * Self-contained on purpose: the page embeds it with `Function.prototype.toString`, so it must not
 * use anything from module scope.
 */
export function renderMarkdown(source: string): string {
  const OPEN = '\uE000';
  const CLOSE = '\uE001';
  const escapeHtml = (text: string): string =>
    text
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&#39;');

  // Fragments of finished HTML are parked in `slots` behind private-use markers so later rules
  // (emphasis inside URLs, say) cannot touch them.
  const slots: string[] = [];
  const park = (html: string): string => `${OPEN}${slots.push(html) - 1}${CLOSE}`;
  const slotPattern = new RegExp(`${OPEN}(\\d+)${CLOSE}`, 'g');
  const unpark = (text: string): string =>
    text.replace(slotPattern, (_match, index: string) => unpark(slots[Number(index)] ?? ''));
  const link = (href: string, label: string): string =>
    `<a href="${href}" target="_blank" rel="noopener noreferrer nofollow">${label}</a>`;

  /** One line of already-escaped text. */
  const inline = (escaped: string): string => {
    let out = escaped.replace(/(`+)([^`\n]+?)\1(?!`)/g, (_match, _ticks, code: string) =>
      park(`<code>${code}</code>`),
    );
    out = out.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)/gi, (_match, label: string, href: string) =>
      park(link(href, label)),
    );
    // Bare URLs stop at any entity but `&amp;` (so at quotes and angle brackets); trailing
    // punctuation stays outside the link.
    out = out.replace(/https?:\/\/(?:[^\s&]|&amp;)+/gi, (url: string) => {
      let href = url;
      for (;;) {
        const last = href.charAt(href.length - 1);
        const unbalanced = last === ')' && href.split('(').length < href.split(')').length;
        if (!'.,;:!?'.includes(last) && !unbalanced) break;
        href = href.slice(0, -1);
      }
      return park(link(href, href)) + url.slice(href.length);
    });
    out = out.replace(/\*\*([^\s*](?:.*?[^\s*])?)\*\*/g, '<strong>$1</strong>');
    out = out.replace(/(^|[^\w])__(\S(?:.*?\S)?)__(?!\w)/g, '$1<strong>$2</strong>');
    out = out.replace(/(^|[^*\w])\*([^*\s](?:[^*]*[^*\s])?)\*(?![*\w])/g, '$1<em>$2</em>');
    out = out.replace(/(^|[^\w])_([^_\s](?:[^_]*[^_\s])?)_(?!\w)/g, '$1<em>$2</em>');
    out = out.replace(/~~(\S(?:.*?\S)?)~~/g, '<del>$1</del>');
    return out;
  };

  /** Plain text between code fences. */
  const block = (text: string): string =>
    text
      .split('\n')
      .map((line) => {
        const escaped = escapeHtml(line);
        const heading = /^#{1,6}\s+(.*)$/.exec(escaped);
        if (heading) return `<strong class="md-h">${inline(heading[1] ?? '')}</strong>`;
        const bullet = /^(\s*)[-*+]\s+(.*)$/.exec(escaped);
        if (bullet) return `${bullet[1] ?? ''}• ${inline(bullet[2] ?? '')}`;
        return inline(escaped);
      })
      .join('<br>');

  const codeBlock = (info: string, code: string): string => {
    const lang = /^[\w+#.-]{1,32}/.exec(info.trim())?.[0] ?? '';
    return (
      '<div class="md-code"><div class="md-code-bar">' +
      `<span class="md-lang">${lang ? escapeHtml(lang) : 'code'}</span>` +
      '<button type="button" class="md-copy" aria-label="Copy code">Copy</button></div>' +
      `<pre><code>${escapeHtml(code)}</code></pre></div>`
    );
  };

  // A fence opens or closes only at the start of a line (after optional indentation), and never
  // on a line that closes it again (```inline``` is inline code).
  const fence = /(^|\n)[ \t]*```(?![^\n]*```)/;
  let rest = source.replace(/\r\n?/g, '\n').split(OPEN).join('').split(CLOSE).join('');
  let html = '';
  for (;;) {
    const open = fence.exec(rest);
    if (!open) {
      html += block(rest);
      break;
    }
    html += block(rest.slice(0, open.index));
    const afterOpen = rest.slice(open.index + open[0].length);
    const newline = afterOpen.indexOf('\n');
    const info = newline < 0 ? afterOpen : afterOpen.slice(0, newline);
    const body = newline < 0 ? '' : afterOpen.slice(newline);
    const close = fence.exec(body);
    html += codeBlock(info, (close ? body.slice(0, close.index) : body).replace(/^\n/, ''));
    rest = close ? body.slice(close.index + close[0].length).replace(/^[^\S\n]*\n?/, '') : '';
  }
  return unpark(html);
}

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/*
 * Browser code, as a template string: it must contain no backtick, no dollar-brace and no backslash
 * (switch to String.raw if a regex ever needs one). `renderMarkdown` is spliced in from above.
 */
const APP_BODY = `
  const root = document.getElementById('chat');
  const room = root.dataset.room;
  const maxChars = Number(root.dataset.maxChars) || 8000;
  const maxBytes = Number(root.dataset.maxBytes) || 16384;
  const $ = (id) => document.getElementById(id);
  const scroller = $('scroller');
  const list = $('messages');
  const empty = $('empty');
  const form = $('composer');
  const input = $('input');
  const sendButton = $('send');
  const statusEl = $('status');
  const statusText = $('status-text');
  const typingEl = $('typing');
  const live = $('live');
  const errorEl = $('error');
  const nodes = new Map();
  const encoder = new TextEncoder();
  let socket = null;
  let attempt = 0;
  let retryTimer = 0;
  let typingTimer = 0;
  let announceTimer = 0;
  let errorTimer = 0;
  let sequence = 0;

  function visitorId() {
    const key = 'hermes-webchat-visitor';
    try {
      const saved = localStorage.getItem(key);
      if (saved && /^[A-Za-z0-9_-]{8,64}$/.test(saved)) return saved;
    } catch {}
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    let id = '';
    for (const byte of crypto.getRandomValues(new Uint8Array(22))) id += alphabet[byte % 62];
    try {
      localStorage.setItem(key, id);
    } catch {}
    return id;
  }
  const visitor = visitorId();

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 96;
  const toBottom = () => {
    scroller.scrollTop = scroller.scrollHeight;
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fillBubble(bubble, message) {
    if (message.role === 'agent') bubble.innerHTML = renderMarkdown(message.text);
    else bubble.textContent = message.text;
  }

  function setStatusMark(item, status) {
    const mark = item.querySelector('.state');
    if (!mark) return;
    item.dataset.status = status;
    mark.textContent = status === 'delivered' ? '✓' : status === 'failed' ? 'Not delivered' : '';
    mark.title = status === 'delivered' ? 'Delivered to the agent' : status === 'failed' ? 'Not delivered' : 'Sending';
    mark.setAttribute('aria-label', mark.title);
  }

  function render(message) {
    let item = nodes.get(message.id);
    if (!item) {
      item = el('li');
      nodes.set(message.id, item);
      list.append(item);
    }
    item.className = 'msg ' + message.role;
    item.replaceChildren();
    if (message.role === 'system') {
      item.append(el('p', 'notice', message.text));
    } else {
      const who = message.role === 'user' ? 'You' : 'Agent';
      item.append(el('span', 'sr-only', who + ':'));
      const bubble = el('div', message.role === 'agent' ? 'bubble md' : 'bubble');
      fillBubble(bubble, message);
      const meta = el('div', 'meta');
      const time = el('time', '', timeFormat.format(new Date(message.ts)));
      time.dateTime = new Date(message.ts).toISOString();
      meta.append(time);
      if (message.role === 'user') meta.append(el('span', 'state'));
      item.append(bubble, meta);
      if (message.role === 'user') setStatusMark(item, message.status || 'sent');
    }
    empty.hidden = true;
    return item;
  }

  function showTyping(on) {
    clearTimeout(typingTimer);
    typingEl.hidden = !on;
    if (on) typingTimer = setTimeout(() => showTyping(false), 6000);
  }

  function announce(id) {
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      const bubble = nodes.get(id)?.querySelector('.bubble');
      if (!bubble) return;
      const text = bubble.textContent.trim();
      live.textContent = 'Agent: ' + (text.length > 500 ? text.slice(0, 500) + '…' : text);
    }, 900);
  }

  function showError(text) {
    clearTimeout(errorTimer);
    errorEl.textContent = text;
    errorEl.hidden = false;
    errorTimer = setTimeout(() => {
      errorEl.hidden = true;
    }, 8000);
  }

  function handle(frame) {
    const stick = nearBottom();
    switch (frame.type) {
      case 'history':
        nodes.clear();
        list.replaceChildren();
        for (const message of frame.messages) render(message);
        empty.hidden = frame.messages.length > 0;
        toBottom();
        return;
      case 'message':
        render(frame.message);
        if (frame.message.role === 'agent') {
          showTyping(false);
          announce(frame.message.id);
        }
        if (stick || frame.message.role === 'user') toBottom();
        return;
      case 'edit': {
        const bubble = nodes.get(frame.message_id)?.querySelector('.bubble');
        if (bubble) {
          fillBubble(bubble, { role: 'agent', text: frame.text });
          announce(frame.message_id);
        }
        break;
      }
      case 'ack':
      case 'failed': {
        const item = nodes.get(frame.message_id);
        if (item) setStatusMark(item, frame.type === 'ack' ? 'delivered' : 'failed');
        return;
      }
      case 'typing':
        showTyping(frame.on);
        break;
      case 'error':
        showError(frame.message);
        return;
    }
    if (stick) toBottom();
  }

  function setStatus(state) {
    statusEl.dataset.state = state;
    statusText.textContent =
      state === 'connected' ? 'connected' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
    sendButton.disabled = state !== 'connected';
  }

  function connect() {
    clearTimeout(retryTimer);
    setStatus(attempt === 0 ? 'connecting' : 'reconnecting');
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const query = '?room=' + encodeURIComponent(room) + '&visitor=' + encodeURIComponent(visitor);
    const ws = new WebSocket(scheme + location.host + '/chat/ws' + query);
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      setStatus('connected');
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === 'string') handle(frame);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      showTyping(false);
      if (event.code === 1009) showError('That message was too large to send.');
      // Exponential backoff with jitter: about 0.5 s, 1 s, 2 s … capped at 15 s.
      const delay = Math.min(15000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setStatus('reconnecting');
      retryTimer = setTimeout(connect, delay);
    };
  }

  const reconnectNow = () => {
    if (!socket && document.visibilityState === 'visible') connect();
  };
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', reconnectNow);

  function grow() {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 200) + 'px';
  }

  function send() {
    const text = input.value.trim();
    if (!text) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError('You are offline. Your message is kept here until the chat reconnects.');
      return;
    }
    if ([...text].length > maxChars) {
      showError('Messages are limited to ' + maxChars + ' characters.');
      return;
    }
    sequence += 1;
    const frame = JSON.stringify({ type: 'message', text, clientId: 'c' + sequence });
    if (encoder.encode(frame).length > maxBytes) {
      showError('That message is too long to send in one go. Please split it.');
      return;
    }
    socket.send(frame);
    input.value = '';
    grow();
    errorEl.hidden = true;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
    input.focus();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener('input', grow);

  list.addEventListener('click', (event) => {
    const button = event.target.closest('.md-copy');
    if (!button || !navigator.clipboard) return;
    const code = button.closest('.md-code')?.querySelector('code');
    navigator.clipboard.writeText(code ? code.textContent : '').then(() => {
      button.textContent = 'Copied';
      setTimeout(() => {
        button.textContent = 'Copy';
      }, 1500);
    }, () => showError('Could not copy to the clipboard.'));
  });

  connect();
  // Focus the composer on desktop; on touch screens that would pop the keyboard over the page.
  if (window.matchMedia('(pointer: fine)').matches) input.focus();
`;

export const APP_JS = `'use strict';
(() => {
  const renderMarkdown = ${renderMarkdown.toString()};
${APP_BODY}})();
`;

export const APP_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f4f5f8;
  --surface: #ffffff;
  --text: #1b1f24;
  --muted: #59636e;
  --border: #d9dde3;
  --agent-bg: #ffffff;
  --user-bg: #1f56d1;
  --user-text: #ffffff;
  --accent: #1f56d1;
  --link: #1a4fc4;
  --code-bg: #f1f3f6;
  --code-bar: #e6e9ee;
  --ok: #1a7f37;
  --warn: #9a5b00;
  --danger: #b42318;
  --focus: #1f56d1;
  --shadow: 0 1px 2px rgba(16, 24, 40, 0.06), 0 1px 3px rgba(16, 24, 40, 0.08);
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117;
    --surface: #151b23;
    --text: #e6edf3;
    --muted: #9ba6b2;
    --border: #2a313b;
    --agent-bg: #1a212b;
    --user-bg: #2563eb;
    --user-text: #ffffff;
    --accent: #6ea8ff;
    --link: #8ab8ff;
    --code-bg: #0b0f14;
    --code-bar: #202833;
    --ok: #4ac26b;
    --warn: #e3b341;
    --danger: #ff7b72;
    --focus: #8ab8ff;
    --shadow: none;
  }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body {
  background: var(--bg);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  -webkit-font-smoothing: antialiased;
}
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
:focus-visible { outline: 2px solid var(--focus); outline-offset: 2px; }
.app { display: flex; flex-direction: column; height: 100vh; height: 100dvh; }
.column { width: 100%; max-width: 780px; margin: 0 auto; padding: 0 16px; }
.top {
  display: flex; align-items: center; justify-content: space-between; gap: 12px;
  padding: 10px 16px; background: var(--surface); border-bottom: 1px solid var(--border);
}
.brand { display: flex; align-items: center; gap: 10px; min-width: 0; }
.logo {
  display: grid; place-items: center; width: 36px; height: 36px; flex: none;
  border-radius: 10px; background: var(--user-bg); color: var(--user-text);
}
.logo svg { width: 20px; height: 20px; }
.brand h1 { margin: 0; font-size: 1.02rem; line-height: 1.25; }
.room { margin: 0; color: var(--muted); font-size: 0.84rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.status {
  display: inline-flex; align-items: center; gap: 6px; margin: 0; flex: none;
  padding: 3px 10px; border-radius: 999px; border: 1px solid var(--border);
  font-size: 0.82rem; color: var(--muted);
}
.status .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--warn); }
.status[data-state="connected"] .dot { background: var(--ok); }
.status[data-state="connected"] { color: var(--text); }
.scroller { flex: 1; overflow-y: auto; overscroll-behavior: contain; padding: 20px 0 8px; }
.empty { text-align: center; color: var(--muted); padding: 12vh 8px 0; }
.empty-title { font-size: 1.25rem; color: var(--text); font-weight: 600; margin: 0 0 6px; }
.empty p { margin: 0 auto 6px; max-width: 30em; }
.messages { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 10px; }
.msg { display: flex; flex-direction: column; max-width: 85%; }
.msg.user { align-self: flex-end; align-items: flex-end; }
.msg.agent { align-self: flex-start; align-items: flex-start; }
.msg.system { align-self: center; max-width: 92%; }
.bubble {
  padding: 9px 14px; border-radius: 18px; overflow-wrap: anywhere; white-space: pre-wrap;
  box-shadow: var(--shadow); max-width: 100%;
}
.user .bubble { background: var(--user-bg); color: var(--user-text); border-bottom-right-radius: 6px; }
.agent .bubble {
  background: var(--agent-bg); border: 1px solid var(--border); border-bottom-left-radius: 6px;
  white-space: normal;
}
.meta { display: flex; gap: 6px; align-items: center; font-size: 0.75rem; color: var(--muted); padding: 2px 6px 0; }
.meta .state { color: var(--ok); font-weight: 600; }
.msg[data-status="failed"] .meta .state { color: var(--danger); }
.notice {
  margin: 4px 0; padding: 6px 12px; border-radius: 10px; font-size: 0.88rem; text-align: center;
  color: var(--text); background: var(--surface); border: 1px dashed var(--warn);
}
.md a { color: var(--link); text-decoration: underline; text-underline-offset: 2px; }
.md code { background: var(--code-bg); border: 1px solid var(--border); border-radius: 5px; padding: 0 4px; font-size: 0.9em; }
.md .md-h { display: inline-block; margin-top: 2px; font-size: 1.04em; }
.md-code { margin: 8px 0; border: 1px solid var(--border); border-radius: 10px; overflow: hidden; background: var(--code-bg); }
.md-code-bar {
  display: flex; justify-content: space-between; align-items: center; padding: 3px 6px 3px 12px;
  background: var(--code-bar); font-size: 0.76rem; color: var(--muted);
}
.md-copy {
  font: inherit; color: var(--text); background: transparent; border: 1px solid transparent;
  border-radius: 6px; padding: 2px 8px; cursor: pointer;
}
.md-copy:hover { border-color: var(--border); }
.md-code pre { margin: 0; padding: 10px 12px; overflow-x: auto; }
.md-code pre code { background: none; border: 0; padding: 0; font-size: 0.86rem; white-space: pre; }
.typing { display: flex; align-items: center; gap: 8px; color: var(--muted); font-size: 0.88rem; padding: 10px 4px 0; }
.typing[hidden] { display: none; }
.dots { display: inline-flex; gap: 3px; }
.dots i { width: 6px; height: 6px; border-radius: 50%; background: var(--muted); animation: blink 1.2s infinite ease-in-out; }
.dots i:nth-child(2) { animation-delay: 0.15s; }
.dots i:nth-child(3) { animation-delay: 0.3s; }
@keyframes blink { 0%, 80%, 100% { opacity: 0.25; } 40% { opacity: 1; } }
@media (prefers-reduced-motion: reduce) { .dots i { animation: none; opacity: 0.7; } }
.composer-wrap {
  background: var(--surface); border-top: 1px solid var(--border);
  padding: 10px 0 calc(8px + env(safe-area-inset-bottom));
}
.composer { display: flex; align-items: flex-end; gap: 8px; }
.composer textarea {
  flex: 1; resize: none; min-height: 44px; max-height: 200px; padding: 10px 14px;
  font: inherit; color: var(--text); background: var(--bg);
  border: 1px solid var(--border); border-radius: 22px; line-height: 1.4;
}
.composer textarea:focus-visible { outline: 2px solid var(--focus); outline-offset: 0; border-color: transparent; }
.send {
  display: grid; place-items: center; width: 44px; height: 44px; flex: none;
  border: 0; border-radius: 50%; background: var(--user-bg); color: var(--user-text); cursor: pointer;
}
.send svg { width: 20px; height: 20px; }
.send:disabled { opacity: 0.45; cursor: not-allowed; }
.hint { margin: 4px auto 0; font-size: 0.76rem; color: var(--muted); }
.error { margin: 4px auto 0; font-size: 0.86rem; color: var(--danger); }
.error[hidden] { display: none; }
@media (max-width: 560px) {
  .column { padding: 0 10px; }
  .top { padding: 8px 10px; }
  .msg { max-width: 92%; }
  .hint { display: none; }
}
`;

/** Changes whenever the page code does, so assets can be cached hard behind `?v=`. */
export const ASSET_VERSION = createHash('sha256').update(APP_JS).update(APP_CSS).digest('hex').slice(0, 12);

const CHAT_ICON =
  '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
  'stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6' +
  'A8 8 0 1 1 21 12z"/></svg>';
const SEND_ICON =
  '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
  'stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M22 2 11 13"/>' +
  '<path d="M22 2 15 22l-4-9-9-4 20-7z"/></svg>';

function shell(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/chat/assets/app.css?v=${ASSET_VERSION}">
${body}`;
}

/** The chat page for one room. `room` must already be validated. */
export function renderChatPage(options: { room: string; title: string }): string {
  const room = escapeHtml(options.room);
  const title = escapeHtml(options.title);
  return shell(
    `${options.title} · ${options.room}`,
    `<script src="/chat/assets/app.js?v=${ASSET_VERSION}" defer></script>
</head>
<body>
<div class="app" id="chat" data-room="${room}" data-max-chars="${MAX_TEXT_CHARS}" data-max-bytes="${MAX_FRAME_BYTES}">
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
      <label class="sr-only" for="input">Message</label>
      <textarea id="input" rows="1" placeholder="Message the agent…" autocomplete="off" enterkeyhint="send" aria-describedby="hint"></textarea>
      <button class="send" id="send" type="submit" aria-label="Send message" disabled>${SEND_ICON}</button>
    </form>
    <p class="hint column" id="hint">Enter to send · Shift+Enter for a new line</p>
    <p class="error column" id="error" role="alert" hidden></p>
  </footer>
  <div class="sr-only" id="live" aria-live="polite" aria-atomic="true"></div>
</div>
</body>
</html>
`,
  );
}

/** Shown for a room name that is not `^[A-Za-z0-9_-]{1,64}$`. */
export function renderNotFoundPage(title: string): string {
  return shell(
    `Chat room not found · ${title}`,
    `</head>
<body>
<main class="column empty">
  <h1 class="empty-title">Chat room not found</h1>
  <p>Room names use 1 to 64 letters, digits, <code>-</code> or <code>_</code>.</p>
  <p><a href="/chat/demo">Open the demo room</a></p>
</main>
</body>
</html>
`,
  );
}
