import { createHash } from 'node:crypto';

/**
 * The dashboard web page (`GET /`): one HTML document plus a stylesheet and a script served from
 * `/assets/` (content-hashed names, so they can be cached forever). No framework, no build step,
 * no external network. The page talks to the HTTP API of lifecycle reference §2 — `/api/status`,
 * the `/api/events` stream, `/api/gateway/{drain,restart}` and the password login — and shows
 * the gateway state, active turns, platforms and a live timeline.
 *
 * Untrusted data (status fields, error texts, principals) only ever reaches the DOM through
 * `textContent`; the server-side values (title, version, session token) are escaped here. No
 * inline script or style: the server's Content-Security-Policy allows only `'self'`. Writes carry
 * the session token on a loopback bind, else (cookie login) the CSRF token from `api/auth/me`.
 */

export interface DashboardPageOptions {
  /** Product name in the header and the window title. */
  title?: string;
  /** The per-process loopback session token; omitted on gated (login) binds. */
  sessionToken?: string | undefined;
  /** True when the API needs a cookie login. */
  loginRequired: boolean;
  version: string;
}

export const DEFAULT_DASHBOARD_TITLE = 'Hermes Relay';

const DASHBOARD_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f4f5f7;
  --surface: #ffffff;
  --surface-2: #f1f3f6;
  --border: #d9dde3;
  --text: #1a1e24;
  --muted: #566070;
  --accent: #1f56d6;
  --accent-hover: #1846b3;
  --accent-text: #ffffff;
  --focus: #1f56d6;
  --ok-bg: #dcf3e3; --ok-fg: #0b5d28; --ok-dot: #17984a;
  --warn-bg: #fdf0cf; --warn-fg: #6e4300; --warn-dot: #d28a00;
  --bad-bg: #fbe1df; --bad-fg: #9a1a14; --bad-dot: #d63025;
  --idle-bg: #e7e9ed; --idle-fg: #434a55; --idle-dot: #868e9a;
  --info-bg: #dfe8fd; --info-fg: #1c419c; --info-dot: #3a6cf0;
  --danger: #b3261e;
  --danger-hover: #8f1d17;
  --shadow: 0 1px 2px rgb(16 24 40 / 6%), 0 1px 3px rgb(16 24 40 / 8%);
  --radius: 12px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px;
  line-height: 1.5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1116;
    --surface: #161a21;
    --surface-2: #1d222a;
    --border: #2d343e;
    --text: #e7eaef;
    --muted: #a0a9b6;
    --accent: #7ea4ff;
    --accent-hover: #9bb8ff;
    --accent-text: #0a1020;
    --focus: #9bb8ff;
    --ok-bg: #113520; --ok-fg: #86e3a6; --ok-dot: #3cc46d;
    --warn-bg: #3a2a06; --warn-fg: #ffd27a; --warn-dot: #f0a818;
    --bad-bg: #421614; --bad-fg: #ffaaa3; --bad-dot: #f0584d;
    --idle-bg: #272c34; --idle-fg: #c3c9d2; --idle-dot: #8a93a0;
    --info-bg: #17264a; --info-fg: #a9c2ff; --info-dot: #6d93ff;
    --danger: #ff8a80;
    --danger-hover: #ffa79f;
    --shadow: 0 1px 2px rgb(0 0 0 / 40%);
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--text); min-height: 100vh; }
h1, h2, h3, p { margin: 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; background: var(--surface-2); border: 1px solid var(--border); border-radius: 5px; padding: 0 0.3em; overflow-wrap: anywhere; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.skip { position: absolute; left: 0.75rem; top: -3rem; background: var(--surface); color: var(--text); padding: 0.5rem 0.75rem; border-radius: 8px; z-index: 10; }
.skip:focus { top: 0.75rem; }
[hidden] { display: none !important; }

.topbar { display: flex; align-items: center; gap: 0.75rem 1rem; flex-wrap: wrap; padding: 0.75rem 1.25rem; background: var(--surface); border-bottom: 1px solid var(--border); }
.brand { display: flex; align-items: center; gap: 0.6rem; margin-right: auto; min-width: 0; }
.logo { display: grid; place-items: center; width: 2rem; height: 2rem; border-radius: 8px; background: var(--accent); color: var(--accent-text); font-weight: 700; flex: none; }
.brand h1 { font-size: 1.1rem; font-weight: 650; letter-spacing: -0.01em; }
.brand .sub { color: var(--muted); font-size: 0.85rem; }
.version { font-size: 0.78rem; color: var(--muted); border: 1px solid var(--border); border-radius: 999px; padding: 0.05rem 0.5rem; font-variant-numeric: tabular-nums; white-space: nowrap; }
.conn { display: inline-flex; align-items: center; gap: 0.45rem; font-size: 0.85rem; font-weight: 600; padding: 0.25rem 0.7rem; border-radius: 999px; background: var(--idle-bg); color: var(--idle-fg); white-space: nowrap; }
.conn .dot { width: 0.55rem; height: 0.55rem; border-radius: 50%; background: var(--idle-dot); }
.conn[data-state="live"] { background: var(--ok-bg); color: var(--ok-fg); }
.conn[data-state="live"] .dot { background: var(--ok-dot); box-shadow: 0 0 0 3px color-mix(in srgb, var(--ok-dot) 25%, transparent); }
.conn[data-state="reconnecting"], .conn[data-state="connecting"] { background: var(--warn-bg); color: var(--warn-fg); }
.conn[data-state="reconnecting"] .dot, .conn[data-state="connecting"] .dot { background: var(--warn-dot); }
.conn[data-state="signed-out"], .conn[data-state="offline"] { background: var(--bad-bg); color: var(--bad-fg); }
.conn[data-state="signed-out"] .dot, .conn[data-state="offline"] .dot { background: var(--bad-dot); }

.layout { max-width: 1180px; margin: 0 auto; padding: 1.25rem; display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); align-items: start; }
@media (min-width: 920px) {
  .layout { grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); }
  .timeline-card { grid-column: 2; grid-row: 1 / span 2; }
}
.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); box-shadow: var(--shadow); padding: 1.15rem 1.25rem; min-width: 0; }
.card-head { display: flex; align-items: center; justify-content: space-between; gap: 0.75rem; flex-wrap: wrap; margin-bottom: 0.9rem; }
.card h2 { font-size: 0.8rem; font-weight: 700; letter-spacing: 0.06em; text-transform: uppercase; color: var(--muted); }
.muted { color: var(--muted); }
.stale .status-body { opacity: 0.6; }

.badge { display: inline-flex; align-items: center; gap: 0.45rem; font-weight: 650; font-size: 0.95rem; padding: 0.3rem 0.8rem; border-radius: 999px; background: var(--idle-bg); color: var(--idle-fg); }
.badge::before { content: ""; width: 0.6rem; height: 0.6rem; border-radius: 50%; background: var(--idle-dot); }
.tone-ok { background: var(--ok-bg); color: var(--ok-fg); }
.tone-warn { background: var(--warn-bg); color: var(--warn-fg); }
.tone-bad { background: var(--bad-bg); color: var(--bad-fg); }
.tone-info { background: var(--info-bg); color: var(--info-fg); }
.tone-idle { background: var(--idle-bg); color: var(--idle-fg); }
.badge.tone-ok::before, .pill.tone-ok::before { background: var(--ok-dot); }
.badge.tone-warn::before, .pill.tone-warn::before { background: var(--warn-dot); }
.badge.tone-bad::before, .pill.tone-bad::before { background: var(--bad-dot); }
.badge.tone-info::before, .pill.tone-info::before { background: var(--info-dot); }
.badge.tone-warn::before { animation: pulse 1.4s ease-in-out infinite; }
@keyframes pulse { 50% { opacity: 0.35; } }
@media (prefers-reduced-motion: reduce) { .badge.tone-warn::before { animation: none; } }

.status-main { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 1rem 1.75rem; align-items: center; }
@media (max-width: 560px) { .status-main { grid-template-columns: minmax(0, 1fr); } }
.turns { text-align: left; min-width: 7.5rem; }
.turns .num { display: block; font-size: 3.25rem; line-height: 1; font-weight: 700; letter-spacing: -0.02em; font-variant-numeric: tabular-nums; }
.turns .lbl { color: var(--muted); font-size: 0.9rem; }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); gap: 0.6rem 1.25rem; margin: 0; }
.facts div { min-width: 0; }
.facts dt { font-size: 0.78rem; color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.meta { margin-top: 0.2rem; font-size: 0.88rem; color: var(--muted); }
.meta span + span::before { content: "·"; margin: 0 0.45rem; }

.notice { margin-top: 1rem; padding: 0.65rem 0.85rem; border-radius: 8px; border: 1px solid transparent; font-size: 0.92rem; }
.notice.tone-ok { border-color: color-mix(in srgb, var(--ok-dot) 35%, transparent); }
.notice.tone-warn { border-color: color-mix(in srgb, var(--warn-dot) 40%, transparent); }
.notice.tone-bad { border-color: color-mix(in srgb, var(--bad-dot) 40%, transparent); }
.notice.tone-info { border-color: color-mix(in srgb, var(--info-dot) 35%, transparent); }

.actions { margin-top: 1.15rem; padding-top: 1rem; border-top: 1px solid var(--border); }
.buttons { display: flex; flex-wrap: wrap; gap: 0.6rem; }
.btn { font: inherit; font-weight: 600; min-height: 2.5rem; padding: 0.45rem 1.05rem; border-radius: 8px; border: 1px solid var(--border); background: var(--surface); color: var(--text); cursor: pointer; }
.btn:hover:not(:disabled) { background: var(--surface-2); }
.btn.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
.btn.primary:hover:not(:disabled) { background: var(--accent-hover); border-color: var(--accent-hover); }
.btn.danger { color: var(--danger); border-color: color-mix(in srgb, var(--danger) 55%, var(--border)); }
.btn.danger-solid { background: var(--danger); border-color: var(--danger); color: var(--surface); }
.btn.danger-solid:hover:not(:disabled) { background: var(--danger-hover); border-color: var(--danger-hover); }
.btn:disabled { opacity: 0.45; cursor: not-allowed; }
.btn.small { min-height: 2rem; padding: 0.2rem 0.75rem; font-size: 0.88rem; }
.hint { margin-top: 0.6rem; font-size: 0.85rem; color: var(--muted); }
.result { margin-top: 0.6rem; font-size: 0.92rem; min-height: 1.4em; overflow-wrap: anywhere; }
.result[data-tone="ok"] { color: var(--ok-fg); }
.result[data-tone="error"] { color: var(--bad-fg); }

.platforms { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.6rem; }
.platform { border: 1px solid var(--border); border-radius: 10px; padding: 0.7rem 0.85rem; background: var(--surface-2); }
.platform-head { display: flex; align-items: center; justify-content: space-between; gap: 0.5rem; flex-wrap: wrap; }
.platform-name { font-weight: 650; overflow-wrap: anywhere; }
.pill { display: inline-flex; align-items: center; gap: 0.35rem; font-size: 0.8rem; font-weight: 650; padding: 0.1rem 0.6rem; border-radius: 999px; background: var(--idle-bg); color: var(--idle-fg); }
.pill::before { content: ""; width: 0.45rem; height: 0.45rem; border-radius: 50%; background: var(--idle-dot); }
.platform-error { margin-top: 0.45rem; font-size: 0.9rem; overflow-wrap: anywhere; }
.platform-hint { margin-top: 0.35rem; font-size: 0.88rem; color: var(--muted); overflow-wrap: anywhere; }
.platform-hint strong { color: var(--text); font-weight: 600; }
.platform-meta { margin-top: 0.3rem; font-size: 0.8rem; color: var(--muted); }
.empty { color: var(--muted); font-size: 0.92rem; }

.timeline { list-style: none; margin: 0; padding: 0; max-height: 36rem; overflow-y: auto; }
.timeline li { display: grid; grid-template-columns: 4.6rem minmax(0, 1fr); gap: 0.6rem; padding: 0.5rem 0.25rem; border-bottom: 1px solid var(--border); font-size: 0.92rem; }
.timeline li:last-child { border-bottom: 0; }
.timeline time { color: var(--muted); font-variant-numeric: tabular-nums; font-size: 0.85rem; padding-top: 0.05rem; }
.tl-text { display: flex; gap: 0.5rem; align-items: baseline; overflow-wrap: anywhere; min-width: 0; }
.tl-text::before { content: ""; flex: none; width: 0.5rem; height: 0.5rem; border-radius: 50%; background: var(--idle-dot); transform: translateY(-0.05rem); }
.tl-ok .tl-text::before { background: var(--ok-dot); }
.tl-warn .tl-text::before { background: var(--warn-dot); }
.tl-bad .tl-text::before { background: var(--bad-dot); }
.tl-info .tl-text::before { background: var(--info-dot); }
.tl-action .tl-text { font-weight: 600; }

.login-card { max-width: 26rem; margin: 3rem auto; }
.login-card h2 { font-size: 1.3rem; text-transform: none; letter-spacing: -0.01em; color: var(--text); font-weight: 650; }
.login-card .lead { color: var(--muted); margin: 0.35rem 0 1.1rem; }
.field { display: grid; gap: 0.3rem; margin-bottom: 0.9rem; }
.field label { font-weight: 600; font-size: 0.92rem; }
.field input { font: inherit; padding: 0.55rem 0.7rem; border-radius: 8px; border: 1px solid var(--border); background: var(--surface); color: var(--text); width: 100%; }
.field input:focus-visible { outline: 3px solid var(--focus); outline-offset: 0; border-color: var(--focus); }
.field input[aria-invalid="true"] { border-color: var(--bad-dot); }
.login-card .btn { width: 100%; }
.form-error { margin-top: 0.75rem; min-height: 1.4em; color: var(--bad-fg); font-weight: 600; font-size: 0.92rem; }
.loading { text-align: center; color: var(--muted); padding: 4rem 1rem; }
.banner { max-width: 1180px; margin: 1rem auto 0; padding: 0 1.25rem; }
.banner p { padding: 0.7rem 0.9rem; border-radius: 10px; display: flex; gap: 0.75rem; align-items: center; flex-wrap: wrap; justify-content: space-between; font-weight: 600; }
main:focus { outline: none; }
.head-note { font-size: 0.8rem; }

dialog { border: 1px solid var(--border); border-radius: 14px; background: var(--surface); color: var(--text); padding: 1.4rem 1.5rem; width: min(31rem, calc(100vw - 2rem)); box-shadow: 0 20px 50px rgb(0 0 0 / 25%); }
dialog::backdrop { background: rgb(10 14 20 / 55%); }
dialog h2 { font-size: 1.2rem; font-weight: 650; margin-bottom: 0.6rem; }
dialog .dialog-body p { margin-top: 0.55rem; color: var(--text); }
dialog .dialog-body p.muted { color: var(--muted); font-size: 0.92rem; }
.dialog-actions { display: flex; justify-content: flex-end; gap: 0.6rem; margin-top: 1.3rem; flex-wrap: wrap; }
`;

const DASHBOARD_JS = String.raw`
const CONFIG_ID = 'hermes-dashboard-config';
const HISTORY_LIMIT = 100;
const STALE_STREAM_MS = 45000;
const MAX_BACKOFF_MS = 30000;
const CONNECT_TIMEOUT_MS = 15000;

const $ = (id) => document.getElementById(id);
let config = {};
try {
  config = JSON.parse($(CONFIG_ID)?.textContent || '{}');
} catch {
  config = {};
}
const token = typeof config.sessionToken === 'string' && config.sessionToken ? config.sessionToken : null;
const baseUrl = new URL('.', document.baseURI);
const url = (path) => new URL(path, baseUrl).toString();

const state = {
  status: null,
  view: 'loading',
  pending: false,
  stream: null,
  retryTimer: 0,
  retryAt: 0,
  attempt: 0,
  connectedAt: 0,
  connectStartedAt: 0,
  lastByteAt: 0,
  everConnected: false,
  lostLogged: false,
  provider: null,
};

const STATES = {
  running: ['Running', 'ok'],
  draining: ['Draining', 'warn'],
  starting: ['Starting', 'info'],
  stopped: ['Stopped', 'idle'],
  startup_failed: ['Startup failed', 'bad'],
  degraded: ['Degraded', 'bad'],
};
const PLATFORM_TONES = {
  connected: 'ok',
  connecting: 'info',
  retrying: 'warn',
  paused: 'idle',
  disabled: 'idle',
  failed: 'bad',
};
const FIXES = {
  relay_revoked: [
    'The connector revoked this gateway. Create a new enroll token on the connector, run ',
    ['hermes gateway enroll --token <token> --connector-url <url>'],
    ' on this host, then restart the gateway.',
  ],
  relay_unreachable: [
    'The connector cannot be reached. Check ',
    ['GATEWAY_RELAY_URL'],
    ' in the gateway .env and that the connector is running and reachable from this host.',
  ],
  relay_unauthorized: [
    'The connector refused these credentials. Check ',
    ['GATEWAY_RELAY_ID'],
    ' and ',
    ['GATEWAY_RELAY_SECRET'],
    ' in the gateway .env, or enroll the gateway again.',
  ],
};

function stateInfo(s) {
  if (!s) return ['Unknown', 'idle'];
  const key = s.gateway_state || (s.gateway_running ? 'running' : 'stopped');
  return STATES[key] || [String(key), 'idle'];
}
function plural(n, one, many) {
  return n + ' ' + (n === 1 ? one : many);
}
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function rich(parts) {
  const frag = document.createDocumentFragment();
  for (const part of parts) {
    if (Array.isArray(part)) frag.append(el('code', '', part[0]));
    else frag.append(document.createTextNode(part));
  }
  return frag;
}
function parseTime(value) {
  const t = typeof value === 'number' ? value * (value < 1e12 ? 1000 : 1) : Date.parse(value || '');
  return Number.isFinite(t) ? t : null;
}
function relative(t) {
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 2 && s > -2) return 'just now';
  if (s < 0) return 'in ' + -s + ' s';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}
function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
function timeNode(value, className) {
  const t = parseTime(value);
  const node = el('time', className || '');
  if (t === null) {
    node.textContent = '—';
    return node;
  }
  node.dateTime = new Date(t).toISOString();
  node.title = new Date(t).toLocaleString();
  node.dataset.rel = String(t);
  node.textContent = relative(t);
  return node;
}
function seconds(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return '—';
  return (Math.round(n * 10) / 10).toString() + ' s';
}
function yesNo(value) {
  return value ? 'Yes' : 'No';
}

// --- views ---------------------------------------------------------------------------------
function showView(view) {
  state.view = view;
  $('loading-view').hidden = view !== 'loading';
  $('login-view').hidden = view !== 'login';
  $('dashboard-view').hidden = view !== 'dashboard';
  $('logout').hidden = !(view === 'dashboard' && config.loginRequired && !token);
}
function setConn(kind, text, detail) {
  const node = $('conn');
  node.dataset.state = kind;
  const label = $('conn-text');
  if (label.textContent !== text) label.textContent = text;
  $('conn-detail').textContent = detail || '';
  $('status-card').classList.toggle('stale', kind !== 'live' && state.status !== null);
}
function announce(text) {
  const node = $('announcer');
  node.textContent = '';
  window.setTimeout(() => {
    node.textContent = text;
  }, 50);
}
function showBanner(text, withReload) {
  const banner = $('banner');
  const p = $('banner-text');
  p.replaceChildren(el('span', '', text));
  if (withReload) {
    const button = el('button', 'btn small', 'Reload');
    button.type = 'button';
    button.addEventListener('click', () => window.location.reload());
    p.append(button);
  }
  banner.hidden = false;
}

// --- timeline ------------------------------------------------------------------------------
function timeline(kind, tone, text, at) {
  const list = $('timeline');
  $('timeline-empty').hidden = true;
  const t = parseTime(at) ?? Date.now();
  const item = el('li', 'tl-' + tone + (kind === 'action' ? ' tl-action' : ''));
  item.dataset.kind = kind;
  const time = el('time', '', clock(t));
  time.dateTime = new Date(t).toISOString();
  time.title = new Date(t).toLocaleString();
  item.append(time, el('span', 'tl-text', text));
  list.prepend(item);
  while (list.children.length > HISTORY_LIMIT) list.lastElementChild.remove();
}

// --- status --------------------------------------------------------------------------------
function platformLabel(p) {
  if (!p || typeof p !== 'object') return 'unknown';
  return String(p.state || 'unknown') + (p.error_code ? ' (' + p.error_code + ')' : '');
}
function applyStatus(s) {
  if (!s || typeof s !== 'object') return;
  const prev = state.status;
  state.status = s;
  const [label] = stateInfo(s);
  const turns = Number(s.active_agents) || 0;
  if (!prev) {
    timeline('state', stateInfo(s)[1], 'Gateway ' + label.toLowerCase() + ' · ' + plural(turns, 'active turn', 'active turns'));
    announce('Gateway ' + label.toLowerCase() + ', ' + plural(turns, 'active turn', 'active turns'));
  } else {
    const [prevLabel] = stateInfo(prev);
    if (prevLabel !== label) {
      timeline('state', stateInfo(s)[1], 'State ' + prevLabel.toLowerCase() + ' → ' + label.toLowerCase());
      announce('Gateway state: ' + label.toLowerCase());
    }
    const before = Number(prev.active_agents) || 0;
    if (before !== turns) {
      timeline('turns', 'info', 'Active turns ' + before + ' → ' + turns);
      if (s.gateway_state === 'draining' && turns === 0) announce('Drain complete: no turns running');
    }
    const a = prev.gateway_platforms || {};
    const b = s.gateway_platforms || {};
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const was = a[name] ? platformLabel(a[name]) : null;
      const now = b[name] ? platformLabel(b[name]) : null;
      if (was === now) continue;
      const tone = b[name] ? PLATFORM_TONES[b[name].state] || 'idle' : 'idle';
      timeline('platform', tone, name + ': ' + (was || 'none') + ' → ' + (now || 'removed'));
    }
  }
  render();
}
function applyAction(a) {
  if (!a || typeof a !== 'object') return;
  const who = a.principal ? ' by ' + a.principal : '';
  const text =
    a.action === 'drain'
      ? 'Drain requested' + who
      : a.action === 'cancel'
        ? 'Drain cancelled' + who
        : a.action === 'restart'
          ? 'Restart requested' + who
          : 'Action ' + String(a.action) + who;
  timeline('action', a.action === 'restart' ? 'bad' : a.action === 'drain' ? 'warn' : 'ok', text, a.at);
}

function render() {
  const s = state.status;
  const [label, tone] = stateInfo(s);
  const badge = $('state-badge');
  badge.textContent = label;
  badge.className = 'badge tone-' + tone;
  badge.dataset.state = s ? String(s.gateway_state || '') : '';
  document.title = (s ? label + ' · ' : '') + (config.title || 'Hermes');
  if (!s) return;

  const turns = Number(s.active_agents) || 0;
  $('turns-num').textContent = String(turns);
  $('turns-lbl').textContent = turns === 1 ? 'active turn' : 'active turns';
  $('fact-running').textContent = yesNo(s.gateway_running);
  $('fact-busy').textContent = yesNo(s.gateway_busy);
  $('fact-drainable').textContent = yesNo(s.gateway_drainable);
  $('fact-sessions').textContent = String(Number(s.active_sessions) || 0);
  $('fact-timeout').textContent = seconds(s.restart_drain_timeout);
  const exitRow = $('fact-exit-row');
  exitRow.hidden = !s.gateway_exit_reason;
  $('fact-exit').textContent = s.gateway_exit_reason ? String(s.gateway_exit_reason) : '';

  const meta = $('status-meta');
  const parts = [];
  if (typeof s.gateway_pid === 'number') parts.push(el('span', '', 'PID ' + s.gateway_pid));
  const updated = el('span', '', 'Updated ');
  updated.append(timeNode(s.gateway_updated_at));
  parts.push(updated);
  meta.replaceChildren(...parts);

  const notice = $('status-notice');
  let text = null;
  let noticeTone = 'info';
  if (s.gateway_state === 'draining') {
    noticeTone = turns === 0 ? 'ok' : 'warn';
    text =
      turns === 0
        ? ['Drain complete: new turns are refused and nothing is running. Safe for maintenance; cancel the drain to accept turns again.']
        : ['Draining: new turns are refused while ' + plural(turns, 'turn finishes', 'turns finish') + '.'];
  } else if (s.gateway_state === 'startup_failed') {
    noticeTone = 'bad';
    text = ['The gateway failed to start' + (s.gateway_exit_reason ? ': ' + s.gateway_exit_reason : '') + '. Check its log, then start it with ', ['hermes gateway run'], '.'];
  } else if (!s.gateway_running) {
    noticeTone = 'idle';
    text = ['The gateway is not running. Start it on the host with ', ['hermes gateway run'], '.'];
  } else if (s.gateway_state === 'starting') {
    text = ['The gateway is starting; platforms are connecting.'];
  } else {
    const platforms = s.gateway_platforms || {};
    const failing = Object.keys(platforms).filter((name) => platforms[name] && (platforms[name].state === 'failed' || platforms[name].needs_attention));
    if (failing.length > 0) {
      noticeTone = 'bad';
      text = [plural(failing.length, 'platform needs', 'platforms need') + ' attention: ' + failing.sort().join(', ') + '. See Platforms for the fix.'];
    }
  }
  notice.hidden = !text;
  notice.className = 'notice tone-' + noticeTone;
  notice.replaceChildren(rich(text || []));

  $('btn-drain').disabled = state.pending || !(s.gateway_running && s.gateway_drainable);
  $('btn-cancel').disabled = state.pending || s.gateway_state !== 'draining';
  $('btn-restart').disabled = state.pending;
  $('action-hint').textContent =
    s.gateway_state === 'draining'
      ? 'Cancel drain lets the gateway accept new turns again.'
      : s.gateway_drainable
        ? 'Drain stops new turns without stopping the gateway.'
        : 'Drain is available while the gateway is running.';

  renderPlatforms(s.gateway_platforms || {});
}

function renderPlatforms(platforms) {
  const list = $('platforms');
  const names = Object.keys(platforms).sort();
  $('platforms-empty').hidden = names.length > 0;
  const items = [];
  for (const name of names) {
    const p = platforms[name] && typeof platforms[name] === 'object' ? platforms[name] : {};
    const item = el('li', 'platform');
    const head = el('div', 'platform-head');
    const pstate = String(p.state || 'unknown');
    head.append(el('span', 'platform-name', name), el('span', 'pill tone-' + (PLATFORM_TONES[pstate] || 'idle'), pstate));
    item.append(head);
    if (p.error_code || p.error_message) {
      const err = el('p', 'platform-error');
      if (p.error_code) err.append(el('code', '', p.error_code));
      if (p.error_message) err.append(document.createTextNode((p.error_code ? ' ' : '') + p.error_message));
      item.append(err);
    }
    const fix = FIXES[p.error_code];
    if (fix) {
      const hint = el('p', 'platform-hint');
      hint.append(el('strong', '', 'How to fix: '), rich(fix));
      item.append(hint);
    }
    if (p.updated_at) {
      const meta = el('p', 'platform-meta', 'Updated ');
      meta.append(timeNode(p.updated_at));
      item.append(meta);
    }
    items.push(item);
  }
  list.replaceChildren(...items);
}

// --- API -----------------------------------------------------------------------------------
function errorText(status, data) {
  const detail = data && (data.detail || data.error || data.message);
  if (status === 429) return 'Too many requests. Wait a minute and try again.';
  if (typeof detail === 'string' && detail) return detail;
  if (status === 401) return 'Not signed in.';
  if (status === 403) return 'Not allowed.';
  return 'Request failed (HTTP ' + status + ').';
}
function authHeaders(extra) {
  const headers = Object.assign({ accept: 'application/json' }, extra || {});
  if (token) headers['X-Hermes-Session-Token'] = token;
  return headers;
}
// Cookie sessions (no session token): writes carry the session's CSRF token, read from
// api/auth/me (a page of another origin cannot read it).
let csrfToken = null;
async function fetchCsrfToken() {
  csrfToken = null;
  try {
    const res = await fetch(url('api/auth/me'), { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    const data = await res.json().catch(() => null);
    if (res.ok && data && typeof data.csrf_token === 'string') csrfToken = data.csrf_token;
  } catch {
    csrfToken = null;
  }
  return csrfToken;
}
async function api(method, path, body) {
  const write = method !== 'GET' && method !== 'HEAD';
  const needsCsrf = write && !token;
  if (needsCsrf && !csrfToken) await fetchCsrfToken();
  const send = () => {
    const extra = body === undefined ? {} : { 'content-type': 'application/json' };
    if (needsCsrf && csrfToken) extra['X-Hermes-CSRF-Token'] = csrfToken;
    return fetch(url(path), {
      method,
      headers: authHeaders(extra),
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let res;
  let data;
  try {
    res = await send();
    data = await res.json().catch(() => null);
    // A dashboard restart renews the CSRF key: fetch the new token and try once more.
    if (needsCsrf && res.status === 403 && data && data.error === 'csrf_token_invalid' && (await fetchCsrfToken())) {
      res = await send();
      data = await res.json().catch(() => null);
    }
  } catch {
    return { ok: false, status: 0, data: null, error: 'Cannot reach the dashboard server.' };
  }
  if (res.status === 401) onUnauthorized();
  const ok = res.ok && !(data && data.ok === false);
  return { ok, status: res.status, data, error: ok ? null : errorText(res.status, data) };
}

// --- event stream --------------------------------------------------------------------------
function stopStream() {
  window.clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  state.retryAt = 0;
  const ctrl = state.stream;
  state.stream = null;
  if (ctrl) ctrl.abort();
}
function dispatch(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return;
  let payload;
  try {
    payload = JSON.parse(data.join('\n'));
  } catch {
    return;
  }
  if (event === 'status') applyStatus(payload);
  else if (event === 'action') applyAction(payload);
}
async function connect() {
  stopStream();
  const ctrl = new AbortController();
  state.stream = ctrl;
  state.connectedAt = 0;
  state.connectStartedAt = Date.now();
  setConn('connecting', state.everConnected ? 'Reconnecting' : 'Connecting', '…');
  const streamUrl = url('api/events') + (token ? '?token=' + encodeURIComponent(token) : '');
  let res;
  try {
    res = await fetch(streamUrl, {
      headers: authHeaders({ accept: 'text/event-stream' }),
      credentials: 'same-origin',
      cache: 'no-store',
      signal: ctrl.signal,
    });
  } catch {
    if (state.stream === ctrl) scheduleReconnect();
    return;
  }
  if (state.stream !== ctrl) return;
  if (res.status === 401) {
    ctrl.abort();
    onUnauthorized();
    return;
  }
  if (!res.ok || !res.body) {
    ctrl.abort();
    scheduleReconnect();
    return;
  }
  if (state.view !== 'dashboard') showView('dashboard');
  $('banner').hidden = true;
  state.connectedAt = Date.now();
  state.lastByteAt = Date.now();
  if (state.lostLogged) timeline('connection', 'ok', 'Reconnected to the dashboard');
  state.lostLogged = false;
  state.everConnected = true;
  setConn('live', 'Live');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      state.lastByteAt = Date.now();
      buffer += value.replace(/\r/g, '');
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf('\n\n');
      }
    }
  } catch {
    // aborted or network error: handled below
  }
  if (state.stream !== ctrl) return;
  if (Date.now() - state.connectedAt > 10000) state.attempt = 0;
  if (!state.lostLogged) timeline('connection', 'warn', 'Connection to the dashboard lost');
  state.lostLogged = true;
  scheduleReconnect();
}
function scheduleReconnect() {
  window.clearTimeout(state.retryTimer);
  const ceiling = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** state.attempt);
  const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  state.attempt += 1;
  state.retryAt = Date.now() + delay;
  state.retryTimer = window.setTimeout(connect, delay);
  updateReconnectText();
}
function updateReconnectText() {
  if (!state.retryAt) return;
  const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  // The countdown sits outside the live region so screen readers hear "Reconnecting" once.
  setConn('reconnecting', 'Reconnecting', left > 0 ? ' in ' + left + ' s' : '…');
}
function reconnectNow() {
  if (state.retryAt && state.view !== 'login') connect();
}

// --- auth ----------------------------------------------------------------------------------
function onUnauthorized() {
  if (state.view === 'login') return;
  stopStream();
  if (token && !config.loginRequired) {
    setConn('offline', 'Session ended');
    showBanner('The dashboard server restarted or the session token changed. Reload the page to continue.', true);
    return;
  }
  setConn('signed-out', 'Signed out');
  showLogin(state.status !== null ? 'Your session ended. Sign in again to continue.' : '');
}
async function showLogin(message) {
  showView('login');
  const error = $('login-error');
  error.textContent = message || '';
  const form = $('login-form');
  const note = $('login-note');
  form.hidden = false;
  note.textContent = '';
  try {
    const res = await fetch(url('api/auth/providers'), { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    const data = await res.json().catch(() => null);
    const providers = data && Array.isArray(data.providers) ? data.providers : [];
    const provider = providers.find((p) => p && p.supports_password);
    if (provider) {
      state.provider = String(provider.name);
    } else {
      form.hidden = true;
      note.textContent = 'No password login is configured. On the host, run hermes dashboard set-password, then restart the dashboard.';
    }
  } catch {
    error.textContent = 'Cannot reach the dashboard server.';
  }
  const username = $('username');
  (username.value ? $('password') : username).focus();
}
async function submitLogin(event) {
  event.preventDefault();
  const username = $('username');
  const password = $('password');
  const error = $('login-error');
  const button = $('login-submit');
  error.textContent = '';
  username.removeAttribute('aria-invalid');
  password.removeAttribute('aria-invalid');
  if (!username.value.trim() || !password.value) {
    error.textContent = 'Enter your username and password.';
    const missing = username.value.trim() ? password : username;
    missing.setAttribute('aria-invalid', 'true');
    missing.focus();
    return;
  }
  button.disabled = true;
  button.textContent = 'Signing in…';
  let res = null;
  let data = null;
  try {
    res = await fetch(url('auth/password-login'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      body: JSON.stringify({ provider: state.provider || 'basic', username: username.value.trim(), password: password.value, next: '/' }),
    });
    data = await res.json().catch(() => null);
  } catch {
    res = null;
  }
  button.disabled = false;
  button.textContent = 'Sign in';
  if (res && res.ok && data && data.ok) {
    password.value = '';
    csrfToken = null;
    state.attempt = 0;
    showView('dashboard');
    connect();
    return;
  }
  if (!res) error.textContent = 'Cannot reach the dashboard server.';
  else if (res.status === 401) error.textContent = 'Wrong username or password.';
  else if (res.status === 429) error.textContent = 'Too many sign-in attempts. Wait a minute and try again.';
  else error.textContent = errorText(res.status, data);
  password.setAttribute('aria-invalid', 'true');
  password.select();
  password.focus();
}
async function logout() {
  stopStream();
  csrfToken = null;
  try {
    await fetch(url('auth/logout'), { method: 'POST', credentials: 'same-origin', redirect: 'manual', cache: 'no-store' });
  } catch {
    // signed out locally either way
  }
  setConn('signed-out', 'Signed out');
  showLogin('');
}

// --- actions -------------------------------------------------------------------------------
const ACTIONS = {
  drain: {
    title: 'Drain the gateway?',
    confirm: 'Drain',
    confirmClass: 'btn primary',
    body(s) {
      const turns = Number(s && s.active_agents) || 0;
      return [
        'The gateway stops accepting new turns: people who write to the agent get a short "draining for maintenance" reply. Turns that are already running are allowed to finish.',
        'Nothing restarts and no turn is interrupted. ' + (turns === 0 ? 'No turns are running right now.' : plural(turns, 'turn is', 'turns are') + ' running right now.'),
        ['Wait until active turns reach 0 before maintenance. Cancel the drain to accept turns again.'],
      ];
    },
    pending: 'Requesting a drain…',
    request: () => api('POST', 'api/gateway/drain', { action: 'drain' }),
    done(d) {
      const t = parseTime(d && d.requested_at);
      return 'Drain requested' + (t ? ' at ' + clock(t) : '') + '. New turns are refused; running turns finish.' + (d && d.draining === false ? ' (The drain marker is not active.)' : '');
    },
    failed: 'Drain failed',
  },
  cancel: {
    title: 'Cancel the drain?',
    confirm: 'Cancel drain',
    confirmClass: 'btn primary',
    body() {
      return ['The gateway starts accepting new turns again, normally within a second.'];
    },
    pending: 'Cancelling the drain…',
    request: () => api('POST', 'api/gateway/drain', { action: 'cancel' }),
    done(d) {
      return d && d.was_draining ? 'Drain cancelled. The gateway accepts new turns again.' : 'No drain was active.';
    },
    failed: 'Cancel failed',
  },
  restart: {
    title: 'Restart the gateway?',
    confirm: 'Restart',
    confirmClass: 'btn danger-solid',
    body(s) {
      const timeout = Number(s && s.restart_drain_timeout);
      const turns = Number(s && s.active_agents) || 0;
      const wait = Number.isFinite(timeout) && timeout > 0 ? 'waits up to ' + seconds(timeout) + ' (the drain timeout) for running turns to finish, then interrupts any that are still running' : 'interrupts running turns immediately (the drain timeout is 0 s)';
      return [
        'This is the force path: the gateway stops accepting turns, ' + wait + ', and starts again.',
        turns === 0 ? 'No turns are running right now.' : plural(turns, 'turn is', 'turns are') + ' running right now and may be interrupted.',
        ['For a gentle restart, drain first and wait for 0 active turns.'],
      ];
    },
    pending: 'Starting the restart…',
    request: () => api('POST', 'api/gateway/restart'),
    done(d) {
      return 'Restart started' + (d && d.pid ? ' (helper process ' + d.pid + ')' : '') + '. The gateway will reconnect shortly.';
    },
    failed: 'Restart failed',
  },
};

function confirmAction(action) {
  const dialog = $('confirm');
  $('confirm-title').textContent = action.title;
  const body = $('confirm-body');
  body.replaceChildren(
    ...action.body(state.status).map((line) => (Array.isArray(line) ? el('p', 'muted', line[0]) : el('p', '', line))),
  );
  const ok = $('confirm-ok');
  ok.textContent = action.confirm;
  ok.className = action.confirmClass;
  if (typeof dialog.showModal !== 'function') return Promise.resolve(window.confirm(action.title));
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
    $('confirm-dismiss').focus();
  });
}
function setResult(tone, text) {
  const node = $('action-result');
  node.dataset.tone = tone;
  node.textContent = text;
}
async function runAction(name) {
  const action = ACTIONS[name];
  if (!action || state.pending) return;
  if (!(await confirmAction(action))) return;
  state.pending = true;
  setResult('pending', action.pending);
  render();
  const result = await action.request();
  state.pending = false;
  if (result.ok) setResult('ok', action.done(result.data));
  else setResult('error', action.failed + ': ' + (result.status === 401 ? 'your session ended; sign in again.' : result.error));
  render();
}

// --- boot ----------------------------------------------------------------------------------
function tick() {
  for (const node of document.querySelectorAll('time[data-rel]')) node.textContent = relative(Number(node.dataset.rel));
  updateReconnectText();
  // A stream that went silent (no heartbeat) or a connect that hangs: drop it and reconnect.
  if (state.stream && state.retryAt === 0) {
    const silent = state.connectedAt ? Date.now() - state.lastByteAt : Date.now() - state.connectStartedAt;
    if (silent > (state.connectedAt ? STALE_STREAM_MS : CONNECT_TIMEOUT_MS)) state.stream.abort();
  }
}

$('btn-drain').addEventListener('click', () => runAction('drain'));
$('btn-cancel').addEventListener('click', () => runAction('cancel'));
$('btn-restart').addEventListener('click', () => runAction('restart'));
$('login-form').addEventListener('submit', submitLogin);
$('logout').addEventListener('click', logout);
window.addEventListener('online', reconnectNow);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') reconnectNow();
});
window.setInterval(tick, 1000);
render();
showView(token || !config.loginRequired ? 'dashboard' : 'loading');
connect();
`;

function assetName(stem: string, ext: string, body: string): string {
  return `${stem}.${createHash('sha256').update(body).digest('hex').slice(0, 12)}.${ext}`;
}

const CSS_NAME = assetName('dashboard', 'css', DASHBOARD_CSS);
const JS_NAME = assetName('dashboard', 'js', DASHBOARD_JS);

/** Static files for `GET /assets/<name>`; names carry a content hash, so cache them forever. */
export const DASHBOARD_ASSETS: Record<string, { body: string; type: string }> = {
  [CSS_NAME]: { body: DASHBOARD_CSS, type: 'text/css; charset=utf-8' },
  [JS_NAME]: { body: DASHBOARD_JS, type: 'text/javascript; charset=utf-8' },
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON safe inside a <script> element: no `</script>`, `<!--` or line-separator breakouts. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** The page for `GET /` (relative asset and API URLs, so it also works under a path prefix). */
export function renderDashboardPage(options: DashboardPageOptions): string {
  const title = options.title?.trim() || DEFAULT_DASHBOARD_TITLE;
  const config = {
    title,
    version: options.version,
    loginRequired: options.loginRequired,
    ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
  };
  const t = escapeHtml(title);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>${t}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${CSS_NAME}">
<script type="application/json" id="hermes-dashboard-config">${scriptJson(config)}</script>
<script type="module" src="assets/${JS_NAME}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
  <div class="brand">
    <span class="logo" aria-hidden="true">H</span>
    <div>
      <h1>${t}</h1>
      <p class="sub">Gateway dashboard</p>
    </div>
    <span class="version" title="Dashboard version">v${escapeHtml(options.version)}</span>
  </div>
  <div id="conn" class="conn" data-state="connecting" role="status" aria-live="polite" aria-label="Connection">
    <span class="dot" aria-hidden="true"></span><span id="conn-text">Connecting</span><span id="conn-detail" aria-hidden="true">…</span>
  </div>
  <button id="logout" type="button" class="btn small" hidden>Sign out</button>
</header>
<div id="banner" class="banner" hidden><p id="banner-text" class="tone-bad" role="alert"></p></div>
<main id="main" tabindex="-1">
  <p id="loading-view" class="loading" hidden>Loading…</p>

  <section id="login-view" class="card login-card" aria-labelledby="login-title" hidden>
    <h2 id="login-title">Sign in</h2>
    <p class="lead">Sign in to see and manage the gateway.</p>
    <p id="login-note" class="hint"></p>
    <form id="login-form" novalidate>
      <div class="field">
        <label for="username">Username</label>
        <input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required>
      </div>
      <div class="field">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
      </div>
      <button id="login-submit" type="submit" class="btn primary">Sign in</button>
      <p id="login-error" class="form-error" role="alert"></p>
    </form>
  </section>

  <div id="dashboard-view" class="layout" hidden>
    <section id="status-card" class="card" aria-labelledby="status-title">
      <div class="card-head">
        <div>
          <h2 id="status-title">Gateway</h2>
          <p id="status-meta" class="meta"></p>
        </div>
        <p><span class="sr-only">Gateway state: </span><span id="state-badge" class="badge">Unknown</span></p>
      </div>
      <div class="status-body">
        <div class="status-main">
          <p class="turns"><span id="turns-num" class="num">–</span> <span id="turns-lbl" class="lbl">active turns</span></p>
          <dl class="facts">
            <div><dt>Running</dt><dd id="fact-running">–</dd></div>
            <div><dt>Busy</dt><dd id="fact-busy">–</dd></div>
            <div><dt>Drainable</dt><dd id="fact-drainable">–</dd></div>
            <div><dt>Sessions (last hour)</dt><dd id="fact-sessions">–</dd></div>
            <div><dt>Restart drain timeout</dt><dd id="fact-timeout">–</dd></div>
            <div id="fact-exit-row" hidden><dt>Exit reason</dt><dd id="fact-exit"></dd></div>
          </dl>
        </div>
        <p id="status-notice" class="notice" hidden></p>
      </div>
      <div class="actions" role="group" aria-labelledby="actions-title">
        <h3 id="actions-title" class="sr-only">Gateway actions</h3>
        <div class="buttons">
          <button id="btn-drain" type="button" class="btn primary" disabled>Drain</button>
          <button id="btn-cancel" type="button" class="btn" disabled>Cancel drain</button>
          <button id="btn-restart" type="button" class="btn danger" disabled>Restart</button>
        </div>
        <p id="action-hint" class="hint"></p>
        <p id="action-result" class="result" role="status" aria-live="polite"></p>
      </div>
    </section>

    <section class="card" aria-labelledby="platforms-title">
      <div class="card-head"><h2 id="platforms-title">Platforms</h2></div>
      <ul id="platforms" class="platforms"></ul>
      <p id="platforms-empty" class="empty">No platforms reported yet.</p>
    </section>

    <section class="card timeline-card" aria-labelledby="timeline-title">
      <div class="card-head"><h2 id="timeline-title">Activity</h2><span class="muted head-note">newest first</span></div>
      <ol id="timeline" class="timeline" aria-label="Recent activity, newest first"></ol>
      <p id="timeline-empty" class="empty">Waiting for the first update…</p>
    </section>
  </div>
</main>
<div id="announcer" class="sr-only" role="status" aria-live="polite" aria-atomic="true"></div>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-body">
  <form method="dialog">
    <h2 id="confirm-title">Confirm</h2>
    <div id="confirm-body" class="dialog-body"></div>
    <div class="dialog-actions">
      <button id="confirm-dismiss" type="submit" value="cancel" class="btn">Keep as is</button>
      <button id="confirm-ok" type="submit" value="confirm" class="btn primary">Confirm</button>
    </div>
  </form>
</dialog>
<noscript><p class="loading">This dashboard needs JavaScript. The raw status is at <a href="api/status">api/status</a>.</p></noscript>
</body>
</html>
`;
}
