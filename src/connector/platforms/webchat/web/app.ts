import type { WebChatMessage as ChatMessage, WebChatServerFrame as ServerFrame } from '../chat-frames.js';
import { renderMarkdown } from './markdown.js';

/**
 * The web chat page's script (an ES module, loaded after markdown-it's browser build).
 *
 * Browser ⇄ server frames (JSON text over `/chat/ws?room=R&visitor=V`):
 * - browser → server: `{type:'message', text, clientId?}`; the clientId is random per message and
 *   is the message's idempotency key: a message not yet answered (`ack`/`failed`) when the socket
 *   drops is sent again, with the same clientId, once it is back, and the server answers it with
 *   the first message's id instead of queuing it twice.
 * - server → browser: `{type:'history', messages}` on connect; `{type:'message', message, clientId?}`
 *   for a new user, agent or system message; `{type:'edit', message_id, text}`; `{type:'ack',
 *   message_id}` (queued for the agent); `{type:'failed', message_id}`; `{type:'typing', on}`;
 *   `{type:'error', message}` for input the server refused. A new agent message ends "typing".
 *
 * Visitor text only ever reaches the DOM through `textContent`; agent text through markdown-it
 * with raw HTML off.
 */

type ConnectionState = 'connected' | 'connecting' | 'reconnecting';
type DeliveryStatus = 'sent' | 'delivered' | 'failed';

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`web chat: #${id} is missing`);
  return node as T;
}

const root = byId('chat');
const room = root.dataset.room ?? '';
const maxChars = Number(root.dataset.maxChars) || 8000;
const maxBytes = Number(root.dataset.maxBytes) || 16384;
const scroller = byId('scroller');
const list = byId<HTMLOListElement>('messages');
const empty = byId('empty');
const form = byId<HTMLFormElement>('composer');
const input = byId<HTMLTextAreaElement>('input');
const sendButton = byId<HTMLButtonElement>('send');
const attachButton = byId<HTMLButtonElement>('attach');
const fileInput = byId<HTMLInputElement>('file');
const statusEl = byId('status');
const statusText = byId('status-text');
const typingEl = byId('typing');
const live = byId('live');
const errorEl = byId('error');
const nodes = new Map<string, HTMLLIElement>();
const encoder = new TextEncoder();
let socket: WebSocket | null = null;
let attempt = 0;
let retryTimer = 0;
let typingTimer = 0;
let announceTimer = 0;
let errorTimer = 0;
/** clientId → the frame sent, until the server answers it (`ack` or `failed`). */
const unanswered = new Map<string, string>();
/** Message id → the clientId it was sent with (from the server's echo). */
const clientIds = new Map<string, string>();

function newClientId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let id = 'c';
  for (const byte of crypto.getRandomValues(new Uint8Array(22))) id += alphabet[byte % 62];
  return id;
}

function visitorId(): string {
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

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fillBubble(bubble: Element, message: Pick<ChatMessage, 'role' | 'text'>): void {
  if (message.role === 'agent') bubble.innerHTML = renderMarkdown(message.text);
  else bubble.textContent = message.text;
}

function setStatusMark(item: HTMLElement, status: DeliveryStatus): void {
  const mark = item.querySelector<HTMLElement>('.state');
  if (!mark) return;
  item.dataset.status = status;
  mark.textContent = status === 'delivered' ? '✓' : status === 'failed' ? 'Not delivered' : '';
  mark.title =
    status === 'delivered' ? 'Delivered to the agent' : status === 'failed' ? 'Not delivered' : 'Sending';
  mark.setAttribute('aria-label', mark.title);
}

function render(message: ChatMessage): HTMLLIElement {
  let item = nodes.get(message.id);
  if (!item) {
    item = el('li');
    nodes.set(message.id, item);
    list.append(item);
  }
  item.className = `msg ${message.role}`;
  item.replaceChildren();
  if (message.role === 'system') {
    item.append(el('p', 'notice', message.text));
  } else {
    const who = message.role === 'user' ? 'You' : 'Agent';
    item.append(el('span', 'sr-only', `${who}:`));
    const bubble = el('div', message.role === 'agent' ? 'bubble md' : 'bubble');
    fillBubble(bubble, message);
    if (message.attachments?.length) bubble.append(attachmentsOf(message));
    if (message.prompt) bubble.append(promptOf(message.id, message.prompt));
    const meta = el('div', 'meta');
    const time = el('time', '', timeFormat.format(new Date(message.ts)));
    time.dateTime = new Date(message.ts).toISOString();
    meta.append(time);
    if (message.reactions?.length) meta.append(el('span', 'reactions', message.reactions.join(' ')));
    if (message.role === 'user') meta.append(el('span', 'state'));
    item.append(bubble, meta);
    if (message.role === 'user') setStatusMark(item, message.status || 'sent');
  }
  empty.hidden = true;
  return item;
}

/** Same-origin images inline (the page loads nothing from elsewhere); everything else a link. */
function attachmentsOf(message: ChatMessage): HTMLElement {
  const box = el('div', 'attachments');
  for (const file of message.attachments ?? []) {
    if (!file.url) {
      // The visitor's own upload: it went to the agent; the page keeps no copy.
      box.append(el('span', 'attachment', `📎 ${file.name}`));
      continue;
    }
    const sameOrigin = file.url.startsWith('/');
    const link = el('a', 'attachment');
    link.href = file.url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    if (sameOrigin && file.mime.startsWith('image/') && file.mime !== 'image/svg+xml') {
      const image = el('img');
      image.src = file.url;
      image.alt = file.name;
      link.append(image);
    } else {
      link.textContent = `📎 ${file.name}`;
      if (sameOrigin) link.setAttribute('download', file.name);
    }
    box.append(link);
  }
  return box;
}

/** One button per option until one is pressed; then the choice, and the buttons disabled. */
function promptOf(messageId: string, prompt: NonNullable<ChatMessage['prompt']>): HTMLElement {
  const box = el('div', 'prompt');
  for (const option of prompt.options) {
    const button = el('button', 'prompt-option', option.label);
    button.type = 'button';
    button.dataset.messageId = messageId;
    button.dataset.optionId = option.id;
    button.disabled = prompt.chosen !== undefined;
    if (prompt.chosen === option.label) button.classList.add('chosen');
    box.append(button);
  }
  if (prompt.chosen !== undefined) box.append(el('p', 'prompt-chosen', `You chose: ${prompt.chosen}`));
  return box;
}

function showTyping(on: boolean): void {
  clearTimeout(typingTimer);
  typingEl.hidden = !on;
  if (on) typingTimer = window.setTimeout(() => showTyping(false), 6000);
}

function announce(id: string): void {
  clearTimeout(announceTimer);
  announceTimer = window.setTimeout(() => {
    const bubble = nodes.get(id)?.querySelector('.bubble');
    if (!bubble) return;
    const text = (bubble.textContent ?? '').trim();
    live.textContent = `Agent: ${text.length > 500 ? `${text.slice(0, 500)}…` : text}`;
  }, 900);
}

function showError(text: string): void {
  clearTimeout(errorTimer);
  errorEl.textContent = text;
  errorEl.hidden = false;
  errorTimer = window.setTimeout(() => {
    errorEl.hidden = true;
  }, 8000);
}

function handle(frame: ServerFrame): void {
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
      if (frame.clientId !== undefined && unanswered.has(frame.clientId))
        clientIds.set(frame.message.id, frame.clientId);
      render(frame.message);
      if (frame.message.role === 'agent') {
        showTyping(false);
        announce(frame.message.id);
      }
      if (stick || frame.message.role === 'user') toBottom();
      return;
    case 'update':
      render(frame.message);
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
      const clientId = clientIds.get(frame.message_id);
      if (clientId !== undefined) {
        unanswered.delete(clientId);
        clientIds.delete(frame.message_id);
      }
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

function setStatus(state: ConnectionState): void {
  statusEl.dataset.state = state;
  statusText.textContent =
    state === 'connected' ? 'connected' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
  sendButton.disabled = state !== 'connected';
  attachButton.disabled = state !== 'connected';
}

function connect(): void {
  clearTimeout(retryTimer);
  setStatus(attempt === 0 ? 'connecting' : 'reconnecting');
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const query = `?room=${encodeURIComponent(room)}&visitor=${encodeURIComponent(visitor)}`;
  const ws = new WebSocket(`${scheme}${location.host}/chat/ws${query}`);
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    setStatus('connected');
    // Sent before the socket dropped and not answered: again, under the same clientId.
    for (const frame of unanswered.values()) ws.send(frame);
  };
  ws.onmessage = (event: MessageEvent) => {
    let frame: unknown;
    try {
      frame = JSON.parse(String(event.data));
    } catch {
      return;
    }
    if (frame && typeof (frame as { type?: unknown }).type === 'string') handle(frame as ServerFrame);
  };
  ws.onclose = (event: CloseEvent) => {
    if (socket !== ws) return;
    socket = null;
    showTyping(false);
    if (event.code === 1009) showError('That message was too large to send.');
    // Exponential backoff with jitter: about 0.5 s, 1 s, 2 s … capped at 15 s.
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    setStatus('reconnecting');
    retryTimer = window.setTimeout(connect, delay);
  };
}

const reconnectNow = () => {
  if (!socket && document.visibilityState === 'visible') connect();
};
window.addEventListener('online', reconnectNow);
document.addEventListener('visibilitychange', reconnectNow);

function grow(): void {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

function send(): void {
  const text = input.value.trim();
  if (!text) return;
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showError('You are offline. Your message is kept here until the chat reconnects.');
    return;
  }
  if ([...text].length > maxChars) {
    showError(`Messages are limited to ${maxChars} characters.`);
    return;
  }
  const clientId = newClientId();
  const frame = JSON.stringify({ type: 'message', text, clientId });
  if (encoder.encode(frame).length > maxBytes) {
    showError('That message is too long to send in one go. Please split it.');
    return;
  }
  unanswered.set(clientId, frame);
  socket.send(frame);
  input.value = '';
  grow();
  errorEl.hidden = true;
}

/** Send files to the agent, one request each; the text typed so far goes with the first one. */
async function upload(files: readonly File[]): Promise<void> {
  for (const [index, file] of files.entries()) {
    if (file.size === 0) continue;
    const caption = index === 0 ? input.value.trim() : '';
    const query = `?room=${encodeURIComponent(room)}&visitor=${encodeURIComponent(visitor)}${
      caption ? `&caption=${encodeURIComponent(caption)}` : ''
    }`;
    try {
      const response = await fetch(`/chat/upload${query}`, {
        method: 'POST',
        headers: {
          'content-type': file.type || 'application/octet-stream',
          'x-media-filename': encodeURIComponent(file.name),
        },
        body: file,
      });
      if (!response.ok) {
        const body = (await response.json().catch(() => ({}))) as { error?: string };
        showError(body.error ?? `Could not send ${file.name}.`);
        continue;
      }
      if (caption) {
        input.value = '';
        grow();
      }
    } catch {
      showError(`Could not send ${file.name}: the chat is offline.`);
    }
  }
}

attachButton.addEventListener('click', () => fileInput.click());
fileInput.addEventListener('change', () => {
  void upload([...(fileInput.files ?? [])]);
  fileInput.value = '';
});
document.addEventListener('dragover', (event) => {
  if (!event.dataTransfer?.types.includes('Files')) return;
  event.preventDefault();
  document.body.classList.add('dropping');
});
document.addEventListener('dragleave', (event) => {
  if (event.relatedTarget === null) document.body.classList.remove('dropping');
});
document.addEventListener('drop', (event) => {
  if (!event.dataTransfer?.files.length) return;
  event.preventDefault();
  document.body.classList.remove('dropping');
  if (attachButton.disabled) {
    showError('You are offline. Drop the file again once the chat reconnects.');
    return;
  }
  void upload([...event.dataTransfer.files]);
});

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
  const option =
    event.target instanceof Element ? event.target.closest<HTMLButtonElement>('.prompt-option') : null;
  if (option && !option.disabled) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError('You are offline. Press again once the chat reconnects.');
      return;
    }
    socket.send(
      JSON.stringify({
        type: 'press',
        message_id: option.dataset.messageId,
        option_id: option.dataset.optionId,
      }),
    );
    for (const sibling of option.parentElement?.querySelectorAll<HTMLButtonElement>('.prompt-option') ?? [])
      sibling.disabled = true;
    return;
  }
  const button = event.target instanceof Element ? event.target.closest<HTMLElement>('.md-copy') : null;
  if (!button || !navigator.clipboard) return;
  const code = button.closest('.md-code')?.querySelector('code');
  navigator.clipboard.writeText(code ? (code.textContent ?? '') : '').then(
    () => {
      button.textContent = 'Copied';
      window.setTimeout(() => {
        button.textContent = 'Copy';
      }, 1500);
    },
    () => showError('Could not copy to the clipboard.'),
  );
});

connect();
// Focus the composer on desktop; on touch screens that would pop the keyboard over the page.
if (window.matchMedia('(pointer: fine)').matches) input.focus();
