/**
 * The dashboard page's script (an ES module served from `/assets/`). It talks to the HTTP API —
 * `/api/status`, the `/api/events` stream, `/api/gateway/{drain,restart}` and the password login —
 * and shows the gateway state, active turns, platforms and a live timeline.
 *
 * Its settings (title, whether a login is needed, the loopback session token) come from the inert
 * JSON block `#hermes-dashboard-config` of the page: no inline script. Untrusted data (status
 * fields, error texts, principals) only ever reaches the DOM through `textContent`. Every API
 * request, the event stream included, carries the session token in the `X-Hermes-Session-Token`
 * header on a loopback bind; cookie-login writes carry the CSRF token from `api/auth/me`. The
 * stream's parser, stall limit and reconnect wait are shared with the admin console (`./sse.js`,
 * served beside this script).
 */

import { eventJson, readEventStream, reconnectDelay, STALE_STREAM_MS, type StreamEvent } from './sse.js';

type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'idle';
type View = 'loading' | 'login' | 'dashboard';
/** Text with code spans: a one-element array is shown as `<code>`. */
type Rich = (string | readonly [string])[];

interface PageConfig {
  title?: string;
  version?: string;
  loginRequired?: boolean;
  sessionToken?: string;
}

interface PlatformStatus {
  state?: string;
  error_code?: string | null;
  error_message?: string | null;
  updated_at?: string | number | null;
  needs_attention?: boolean;
}

/** `GET /api/status` and the stream's `status` events (fields as the server may send them). */
interface GatewayStatus {
  gateway_state?: string | null;
  gateway_running?: boolean;
  gateway_busy?: boolean;
  gateway_drainable?: boolean;
  gateway_exit_reason?: string | null;
  gateway_pid?: number | null;
  gateway_updated_at?: string | number | null;
  gateway_platforms?: Record<string, PlatformStatus | null | undefined> | null;
  active_agents?: number;
  active_sessions?: number;
  restart_drain_timeout?: number;
  /** Only for authenticated callers (the event stream). */
  turns?: TurnInfo[];
  relay?: RelayInfo | null;
}

/** A turn running now (`turns` in the status). */
interface TurnInfo {
  session?: string;
  platform?: string;
  chat_id?: string;
  started_at?: string;
  elapsed_s?: number;
}

interface RelayIdentity {
  platform?: string;
  bot_id?: string;
  descriptor_platform?: string | null;
  label?: string | null;
  ops?: string[] | null;
}

/** What the gateway adopted from the relay (`relay` in the status). */
interface RelayInfo {
  generation?: string;
  inbound?: string;
  identities?: RelayIdentity[];
  ops?: string[];
  contract_version?: number | null;
}

/** An entry of the gateway's activity log (`GET /api/activity`, stream `activity` events). */
interface ActivityEntry {
  id?: string;
  at?: string;
  kind?: string;
  session?: string;
  platform?: string;
  chat_id?: string;
  by?: string;
  seconds?: number;
  detail?: string;
}

interface ActionEvent {
  action?: unknown;
  principal?: string | null;
  at?: string | number;
}

/** A JSON answer of the API (any shape: read defensively). */
type ApiData = Record<string, unknown>;

interface ApiResult {
  ok: boolean;
  status: number;
  data: ApiData | null;
  error: string | null;
}

const CONFIG_ID = 'hermes-dashboard-config';
const HISTORY_LIMIT = 100;
const CONNECT_TIMEOUT_MS = 15000;

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`dashboard: #${id} is missing`);
  return node as T;
}

function readConfig(): PageConfig {
  try {
    const value: unknown = JSON.parse(document.getElementById(CONFIG_ID)?.textContent || '{}');
    return value && typeof value === 'object' ? (value as PageConfig) : {};
  } catch {
    return {};
  }
}
const config = readConfig();
const token = typeof config.sessionToken === 'string' && config.sessionToken ? config.sessionToken : null;
const baseUrl = new URL('.', document.baseURI);
const url = (path: string) => new URL(path, baseUrl).toString();

const state: {
  status: GatewayStatus | null;
  view: View;
  pending: boolean;
  stream: AbortController | null;
  retryTimer: number;
  retryAt: number;
  attempt: number;
  connectedAt: number;
  connectStartedAt: number;
  lastByteAt: number;
  everConnected: boolean;
  lostLogged: boolean;
  provider: string | null;
} = {
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

const STATES: Readonly<Record<string, readonly [string, Tone]>> = {
  running: ['Running', 'ok'],
  draining: ['Draining', 'warn'],
  starting: ['Starting', 'info'],
  stopped: ['Stopped', 'idle'],
  startup_failed: ['Startup failed', 'bad'],
  degraded: ['Degraded', 'bad'],
};
const PLATFORM_TONES: Readonly<Record<string, Tone>> = {
  connected: 'ok',
  connecting: 'info',
  retrying: 'warn',
  paused: 'idle',
  disabled: 'idle',
  failed: 'bad',
};
const FIXES: Readonly<Record<string, Rich>> = {
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

function stateInfo(s: GatewayStatus | null): readonly [string, Tone] {
  if (!s) return ['Unknown', 'idle'];
  const key = s.gateway_state || (s.gateway_running ? 'running' : 'stopped');
  return STATES[key] || [String(key), 'idle'];
}
function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: unknown,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function rich(parts: Rich): DocumentFragment {
  const frag = document.createDocumentFragment();
  for (const part of parts) {
    if (typeof part === 'string') frag.append(document.createTextNode(part));
    else frag.append(el('code', '', part[0]));
  }
  return frag;
}
function parseTime(value: unknown): number | null {
  const t =
    typeof value === 'number'
      ? value * (value < 1e12 ? 1000 : 1)
      : Date.parse(typeof value === 'string' ? value : '');
  return Number.isFinite(t) ? t : null;
}
function relative(t: number): string {
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 2 && s > -2) return 'just now';
  if (s < 0) return `in ${-s} s`;
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
function clock(t: number): string {
  return new Date(t).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
}
function timeNode(value: unknown, className?: string): HTMLTimeElement {
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
function seconds(value: unknown): string {
  const n = Number(value);
  if (!Number.isFinite(n)) return '—';
  return `${(Math.round(n * 10) / 10).toString()} s`;
}
function yesNo(value: unknown): string {
  return value ? 'Yes' : 'No';
}

// --- views ---------------------------------------------------------------------------------
function showView(view: View): void {
  state.view = view;
  $('loading-view').hidden = view !== 'loading';
  $('login-view').hidden = view !== 'login';
  $('dashboard-view').hidden = view !== 'dashboard';
  $('logout').hidden = !(view === 'dashboard' && config.loginRequired && !token);
}
function setConn(kind: string, label: string, detail?: string): void {
  const node = $('conn');
  node.dataset.state = kind;
  const labelNode = $('conn-text');
  if (labelNode.textContent !== label) labelNode.textContent = label;
  $('conn-detail').textContent = detail || '';
  $('status-card').classList.toggle('stale', kind !== 'live' && state.status !== null);
}
function announce(message: string): void {
  const node = $('announcer');
  node.textContent = '';
  window.setTimeout(() => {
    node.textContent = message;
  }, 50);
}
function showBanner(message: string, withReload: boolean): void {
  const banner = $('banner');
  const p = $('banner-text');
  p.replaceChildren(el('span', '', message));
  if (withReload) {
    const button = el('button', 'btn small', 'Reload');
    button.type = 'button';
    button.addEventListener('click', () => window.location.reload());
    p.append(button);
  }
  banner.hidden = false;
}

// --- timeline ------------------------------------------------------------------------------
function timeline(kind: string, tone: Tone, message: string, at?: unknown): void {
  const list = $('timeline');
  $('timeline-empty').hidden = true;
  const t = parseTime(at) ?? Date.now();
  const item = el('li', `tl-${tone}${kind === 'action' ? ' tl-action' : ''}`);
  item.dataset.kind = kind;
  const time = el('time', '', clock(t));
  time.dateTime = new Date(t).toISOString();
  time.title = new Date(t).toLocaleString();
  item.append(time, el('span', 'tl-text', message));
  list.prepend(item);
  while (list.children.length > HISTORY_LIMIT) list.lastElementChild?.remove();
}

// --- status --------------------------------------------------------------------------------
function platformLabel(p: PlatformStatus | null | undefined): string {
  if (!p || typeof p !== 'object') return 'unknown';
  return String(p.state || 'unknown') + (p.error_code ? ` (${p.error_code})` : '');
}
function applyStatus(s: GatewayStatus): void {
  if (!s || typeof s !== 'object') return;
  const prev = state.status;
  state.status = s;
  const [label, tone] = stateInfo(s);
  const turns = Number(s.active_agents) || 0;
  if (!prev) {
    timeline(
      'state',
      tone,
      `Gateway ${label.toLowerCase()} · ${plural(turns, 'active turn', 'active turns')}`,
    );
    announce(`Gateway ${label.toLowerCase()}, ${plural(turns, 'active turn', 'active turns')}`);
  } else {
    const [prevLabel] = stateInfo(prev);
    if (prevLabel !== label) {
      timeline('state', tone, `State ${prevLabel.toLowerCase()} → ${label.toLowerCase()}`);
      announce(`Gateway state: ${label.toLowerCase()}`);
    }
    const before = Number(prev.active_agents) || 0;
    if (before !== turns) {
      timeline('turns', 'info', `Active turns ${before} → ${turns}`);
      if (s.gateway_state === 'draining' && turns === 0) announce('Drain complete: no turns running');
    }
    const a = prev.gateway_platforms || {};
    const b = s.gateway_platforms || {};
    for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const was = a[name] ? platformLabel(a[name]) : null;
      const now = b[name] ? platformLabel(b[name]) : null;
      if (was === now) continue;
      const platformTone = b[name] ? PLATFORM_TONES[String(b[name]?.state)] || 'idle' : 'idle';
      timeline('platform', platformTone, `${name}: ${was || 'none'} → ${now || 'removed'}`);
    }
  }
  render();
}
function applyAction(a: ActionEvent): void {
  if (!a || typeof a !== 'object') return;
  const who = a.principal ? ` by ${a.principal}` : '';
  const message =
    a.action === 'drain'
      ? `Drain requested${who}`
      : a.action === 'cancel'
        ? `Drain cancelled${who}`
        : a.action === 'restart'
          ? `Restart requested${who}`
          : `Action ${String(a.action)}${who}`;
  timeline('action', a.action === 'restart' ? 'bad' : a.action === 'drain' ? 'warn' : 'ok', message, a.at);
}

function render(): void {
  const s = state.status;
  const [label, tone] = stateInfo(s);
  const badge = $('state-badge');
  badge.textContent = label;
  badge.className = `badge tone-${tone}`;
  badge.dataset.state = s ? String(s.gateway_state || '') : '';
  document.title = (s ? `${label} · ` : '') + (config.title || 'Hermes');
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
  const parts: HTMLElement[] = [];
  if (typeof s.gateway_pid === 'number') parts.push(el('span', '', `PID ${s.gateway_pid}`));
  const updated = el('span', '', 'Updated ');
  updated.append(timeNode(s.gateway_updated_at));
  parts.push(updated);
  meta.replaceChildren(...parts);

  const notice = $('status-notice');
  let message: Rich | null = null;
  let noticeTone: Tone = 'info';
  if (s.gateway_state === 'draining') {
    noticeTone = turns === 0 ? 'ok' : 'warn';
    message =
      turns === 0
        ? [
            'Drain complete: new turns are refused and nothing is running. Safe for maintenance; cancel the drain to accept turns again.',
          ]
        : [`Draining: new turns are refused while ${plural(turns, 'turn finishes', 'turns finish')}.`];
  } else if (s.gateway_state === 'startup_failed') {
    noticeTone = 'bad';
    message = [
      `The gateway failed to start${s.gateway_exit_reason ? `: ${s.gateway_exit_reason}` : ''}. Check its log, then start it with `,
      ['hermes gateway run'],
      '.',
    ];
  } else if (!s.gateway_running) {
    noticeTone = 'idle';
    message = ['The gateway is not running. Start it on the host with ', ['hermes gateway run'], '.'];
  } else if (s.gateway_state === 'starting') {
    message = ['The gateway is starting; platforms are connecting.'];
  } else {
    const platforms = s.gateway_platforms || {};
    const failing = Object.keys(platforms).filter((name) => {
      const p = platforms[name];
      return p && (p.state === 'failed' || p.needs_attention);
    });
    if (failing.length > 0) {
      noticeTone = 'bad';
      message = [
        `${plural(failing.length, 'platform needs', 'platforms need')} attention: ${failing.sort().join(', ')}. See Platforms for the fix.`,
      ];
    }
  }
  notice.hidden = !message;
  notice.className = `notice tone-${noticeTone}`;
  notice.replaceChildren(rich(message || []));

  $<HTMLButtonElement>('btn-drain').disabled = state.pending || !(s.gateway_running && s.gateway_drainable);
  $<HTMLButtonElement>('btn-cancel').disabled = state.pending || s.gateway_state !== 'draining';
  $<HTMLButtonElement>('btn-restart').disabled = state.pending;
  $('action-hint').textContent =
    s.gateway_state === 'draining'
      ? 'Cancel drain lets the gateway accept new turns again.'
      : s.gateway_drainable
        ? 'Drain stops new turns without stopping the gateway.'
        : 'Drain is available while the gateway is running.';

  renderPlatforms(s.gateway_platforms || {});
  renderTurns(Array.isArray(s.turns) ? s.turns : []);
  renderRelay(s.relay ?? null);
}

// --- running turns -------------------------------------------------------------------------
function elapsedText(totalSeconds: number): string {
  const t = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${sec} s` : `${sec} s`;
}
const stopping = new Set<string>();
function renderTurns(turns: TurnInfo[]): void {
  const list = $('turns-list');
  $('turns-empty').hidden = turns.length > 0;
  const live = new Set(turns.map((turn) => String(turn.session)));
  for (const key of [...stopping]) if (!live.has(key)) stopping.delete(key);
  // Keep the focused Stop button's row in place: rebuild only when the set of turns changed.
  const signature = turns.map((turn) => `${turn.session}@${turn.started_at}`).join('|');
  if (list.dataset.signature === signature) {
    for (const button of list.querySelectorAll<HTMLButtonElement>('button[data-session]'))
      button.disabled = stopping.has(String(button.dataset.session));
    return;
  }
  list.dataset.signature = signature;
  const items: HTMLElement[] = [];
  for (const turn of turns) {
    const session = String(turn.session ?? '');
    const item = el('li', 'turn');
    item.dataset.session = session;
    const info = el('div', 'turn-info');
    const where = el('p', 'turn-line turn-where');
    where.append(
      el('span', 'pill tone-info', String(turn.platform ?? '?')),
      el('span', 'turn-chat', ` ${String(turn.chat_id ?? '')}`),
    );
    const key = el('p', 'turn-line turn-session');
    key.append(el('span', 'sr-only', 'Session '), el('code', '', session));
    const when = el('p', 'turn-line turn-when');
    const started = parseTime(turn.started_at);
    const elapsed = el('span', 'turn-elapsed', elapsedText(Number(turn.elapsed_s) || 0));
    if (started !== null) elapsed.dataset.since = String(started);
    when.append('Started ', timeNode(turn.started_at), ' · running ', elapsed);
    info.append(where, key, when);
    const button = el('button', 'btn small danger turn-stop', 'Stop');
    button.type = 'button';
    button.dataset.session = session;
    button.setAttribute(
      'aria-label',
      `Stop the turn in ${String(turn.platform ?? '')} chat ${String(turn.chat_id ?? '')}`,
    );
    button.disabled = stopping.has(session);
    button.addEventListener('click', () => void stopTurn(turn));
    item.append(info, button);
    items.push(item);
  }
  const focused =
    document.activeElement instanceof HTMLElement ? document.activeElement.dataset.session : undefined;
  list.replaceChildren(...items);
  if (focused !== undefined) {
    const again = list.querySelector<HTMLButtonElement>(`button[data-session="${CSS.escape(focused)}"]`);
    if (again) again.focus();
    else $('turns-card').focus();
  }
}
async function stopTurn(turn: TurnInfo): Promise<void> {
  const session = String(turn.session ?? '');
  if (stopping.has(session)) return;
  stopping.add(session);
  render();
  const result = $('turns-result');
  result.dataset.tone = 'pending';
  result.textContent = `Stopping the turn in ${String(turn.chat_id ?? session)}…`;
  const answer = await api('POST', 'api/turns/stop', { session });
  if (answer.ok) {
    result.dataset.tone = 'ok';
    result.textContent =
      answer.data?.stopped === false
        ? `Stop requested for ${String(turn.chat_id ?? session)}; the gateway has not confirmed yet.`
        : `Stopped the turn in ${String(turn.chat_id ?? session)}. The chat was told it can continue.`;
  } else {
    stopping.delete(session);
    result.dataset.tone = 'error';
    result.textContent = `Stop failed: ${answer.status === 401 ? 'your session ended; sign in again.' : answer.error}`;
  }
  render();
}

// --- relay ---------------------------------------------------------------------------------
const GENERATIONS: Record<string, string> = {
  current: 'Current (deliveries on the socket)',
  june: 'June 2026 (signed HTTP deliveries)',
};
function renderRelay(relay: RelayInfo | null): void {
  const has = relay !== null && typeof relay === 'object';
  $('relay-empty').hidden = has;
  $('relay-facts').hidden = !has;
  $('relay-identities-title').hidden = !has;
  $('relay-ops-title').hidden = !has;
  const signature = JSON.stringify(relay);
  const card = $('relay-card');
  if (card.dataset.signature === signature) return;
  card.dataset.signature = signature;
  if (!has) {
    $('relay-identities').replaceChildren();
    $('relay-ops').replaceChildren();
    return;
  }
  const generation = String(relay.generation ?? 'unknown');
  $('relay-generation').textContent = GENERATIONS[generation] ?? generation;
  $('relay-contract').textContent =
    typeof relay.contract_version === 'number' ? String(relay.contract_version) : '–';
  const identities = (relay.identities ?? []).map((identity) => {
    const item = el('li', 'relay-identity');
    item.append(el('strong', '', String(identity.platform ?? '?')));
    if (identity.bot_id) item.append(` bot ${identity.bot_id}`);
    item.append(
      identity.label
        ? ` → ${identity.label}${identity.descriptor_platform ? ` (${identity.descriptor_platform})` : ''}, ${plural(identity.ops?.length ?? 0, 'op', 'ops')}`
        : ' → no descriptor yet',
    );
    return item;
  });
  $('relay-identities').replaceChildren(...identities);
  $('relay-ops').replaceChildren(
    ...(relay.ops ?? []).map((op) => {
      const item = el('li');
      item.append(el('code', '', op));
      return item;
    }),
  );
}

// --- gateway activity ----------------------------------------------------------------------
const ACTIVITY_LIMIT = 200;
const seenActivity = new Set<string>();
const ACTIVITY_TONES: Record<string, Tone> = {
  turn_started: 'info',
  turn_finished: 'ok',
  turn_stopped: 'warn',
  turn_failed: 'bad',
  relay_connected: 'ok',
  relay_disconnected: 'bad',
  drain_engaged: 'warn',
  drain_released: 'ok',
  gateway_started: 'ok',
  gateway_stopping: 'warn',
  error: 'bad',
};
function activityText(e: ActivityEntry): string {
  const where = e.platform && e.chat_id ? ` in ${e.platform} ${e.chat_id}` : '';
  const took = typeof e.seconds === 'number' ? ` after ${elapsedText(e.seconds)}` : '';
  switch (e.kind) {
    case 'turn_started':
      return `Turn started${where}`;
    case 'turn_finished':
      return `Turn finished${where}${took}`;
    case 'turn_stopped':
      return `Turn stopped${where}${e.by ? ` (${e.by})` : ''}${took}`;
    case 'turn_failed':
      return `Turn failed${where}${took}`;
    case 'relay_connected':
      return 'Relay connected';
    case 'relay_disconnected':
      return `Relay disconnected${e.detail ? ` (${e.detail})` : ''}`;
    case 'drain_engaged':
      return 'Drain engaged: new turns refused';
    case 'drain_released':
      return 'Drain released: accepting turns';
    case 'gateway_started':
      return 'Gateway started';
    case 'gateway_stopping':
      return `Gateway stopping${e.detail ? ` (${e.detail})` : ''}`;
    default:
      return `Error${e.detail ? `: ${e.detail}` : ''}`;
  }
}
function addActivity(events: ActivityEntry[], live: boolean): void {
  const list = $('activity');
  for (const e of events) {
    const id = String(e.id ?? '');
    if (!id || seenActivity.has(id)) continue;
    seenActivity.add(id);
    const t = parseTime(e.at) ?? Date.now();
    const item = el('li', `tl-${ACTIVITY_TONES[String(e.kind)] ?? 'info'}`);
    item.dataset.kind = String(e.kind ?? '');
    const time = el('time', '', clock(t));
    time.dateTime = new Date(t).toISOString();
    time.title = new Date(t).toLocaleString();
    item.append(time, el('span', 'tl-text', activityText(e)));
    list.prepend(item);
    if (live && (e.kind === 'turn_stopped' || e.kind === 'relay_disconnected' || e.kind === 'turn_failed'))
      announce(activityText(e));
  }
  while (list.children.length > ACTIVITY_LIMIT) list.lastElementChild?.remove();
  $('activity-empty').hidden = list.children.length > 0;
}
async function loadActivity(): Promise<void> {
  const result = await api('GET', 'api/activity');
  if (!result.ok || !result.data || !Array.isArray(result.data.events)) return;
  addActivity(result.data.events as ActivityEntry[], false);
}

function renderPlatforms(platforms: Record<string, PlatformStatus | null | undefined>): void {
  const list = $('platforms');
  const names = Object.keys(platforms).sort();
  $('platforms-empty').hidden = names.length > 0;
  const items: HTMLElement[] = [];
  for (const name of names) {
    const entry = platforms[name];
    const p: PlatformStatus = entry && typeof entry === 'object' ? entry : {};
    const item = el('li', 'platform');
    const head = el('div', 'platform-head');
    const pstate = String(p.state || 'unknown');
    head.append(
      el('span', 'platform-name', name),
      el('span', `pill tone-${PLATFORM_TONES[pstate] || 'idle'}`, pstate),
    );
    item.append(head);
    if (p.error_code || p.error_message) {
      const err = el('p', 'platform-error');
      if (p.error_code) err.append(el('code', '', p.error_code));
      if (p.error_message) err.append(document.createTextNode((p.error_code ? ' ' : '') + p.error_message));
      item.append(err);
    }
    const fix = p.error_code ? FIXES[p.error_code] : undefined;
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
function errorText(status: number, data: ApiData | null): string {
  const detail = data && (data.detail || data.error || data.message);
  if (status === 429) return 'Too many requests. Wait a minute and try again.';
  if (typeof detail === 'string' && detail) return detail;
  if (status === 401) return 'Not signed in.';
  if (status === 403) return 'Not allowed.';
  return `Request failed (HTTP ${status}).`;
}
function authHeaders(extra?: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json', ...extra };
  if (token) headers['X-Hermes-Session-Token'] = token;
  return headers;
}
async function readJson(res: Response): Promise<ApiData | null> {
  const data: unknown = await res.json().catch(() => null);
  return data && typeof data === 'object' ? (data as ApiData) : null;
}
// Cookie sessions (no session token): writes carry the session's CSRF token, read from
// api/auth/me (a page of another origin cannot read it).
let csrfToken: string | null = null;
async function fetchCsrfToken(): Promise<string | null> {
  csrfToken = null;
  try {
    const res = await fetch(url('api/auth/me'), {
      headers: { accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const data = await readJson(res);
    if (res.ok && data && typeof data.csrf_token === 'string') csrfToken = data.csrf_token;
  } catch {
    csrfToken = null;
  }
  return csrfToken;
}
async function api(method: string, path: string, body?: unknown): Promise<ApiResult> {
  const write = method !== 'GET' && method !== 'HEAD';
  const needsCsrf = write && !token;
  if (needsCsrf && !csrfToken) await fetchCsrfToken();
  const send = () => {
    const extra: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    if (needsCsrf && csrfToken) extra['X-Hermes-CSRF-Token'] = csrfToken;
    return fetch(url(path), {
      method,
      headers: authHeaders(extra),
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let res: Response;
  let data: ApiData | null;
  try {
    res = await send();
    data = await readJson(res);
    // A dashboard restart renews the CSRF key: fetch the new token and try once more.
    if (
      needsCsrf &&
      res.status === 403 &&
      data &&
      data.error === 'csrf_token_invalid' &&
      (await fetchCsrfToken())
    ) {
      res = await send();
      data = await readJson(res);
    }
  } catch {
    return { ok: false, status: 0, data: null, error: 'Cannot reach the dashboard server.' };
  }
  if (res.status === 401) onUnauthorized();
  const ok = res.ok && !(data && data.ok === false);
  return { ok, status: res.status, data, error: ok ? null : errorText(res.status, data) };
}

// --- event stream --------------------------------------------------------------------------
function stopStream(): void {
  window.clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  state.retryAt = 0;
  const ctrl = state.stream;
  state.stream = null;
  if (ctrl) ctrl.abort();
}
function dispatch(message: StreamEvent): void {
  const { event } = message;
  const payload = eventJson(message);
  if (payload === undefined) return;
  if (event === 'status') applyStatus(payload as GatewayStatus);
  else if (event === 'action') applyAction(payload as ActionEvent);
  else if (event === 'activity') addActivity((payload as { events?: ActivityEntry[] }).events ?? [], true);
}
async function connect(): Promise<void> {
  stopStream();
  const ctrl = new AbortController();
  state.stream = ctrl;
  state.connectedAt = 0;
  state.connectStartedAt = Date.now();
  setConn('connecting', state.everConnected ? 'Reconnecting' : 'Connecting', '…');
  let res: Response;
  try {
    // The session token travels in the header (authHeaders), never in the URL.
    res = await fetch(url('api/events'), {
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
  void loadActivity();
  await readEventStream(res.body, {
    onEvent: dispatch,
    onChunk: () => {
      state.lastByteAt = Date.now();
    },
  });
  if (state.stream !== ctrl) return;
  if (Date.now() - state.connectedAt > 10000) state.attempt = 0;
  if (!state.lostLogged) timeline('connection', 'warn', 'Connection to the dashboard lost');
  state.lostLogged = true;
  scheduleReconnect();
}
function scheduleReconnect(): void {
  window.clearTimeout(state.retryTimer);
  const delay = reconnectDelay(state.attempt);
  state.attempt += 1;
  state.retryAt = Date.now() + delay;
  state.retryTimer = window.setTimeout(connect, delay);
  updateReconnectText();
}
function updateReconnectText(): void {
  if (!state.retryAt) return;
  const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  // The countdown sits outside the live region so screen readers hear "Reconnecting" once.
  setConn('reconnecting', 'Reconnecting', left > 0 ? ` in ${left} s` : '…');
}
function reconnectNow(): void {
  if (state.retryAt && state.view !== 'login') void connect();
}

// --- auth ----------------------------------------------------------------------------------
function onUnauthorized(): void {
  if (state.view === 'login') return;
  stopStream();
  if (token && !config.loginRequired) {
    setConn('offline', 'Session ended');
    showBanner(
      'The dashboard server restarted or the session token changed. Reload the page to continue.',
      true,
    );
    return;
  }
  setConn('signed-out', 'Signed out');
  void showLogin(state.status !== null ? 'Your session ended. Sign in again to continue.' : '');
}
async function showLogin(message: string): Promise<void> {
  showView('login');
  const error = $('login-error');
  error.textContent = message || '';
  const form = $('login-form');
  const note = $('login-note');
  form.hidden = false;
  note.textContent = '';
  try {
    const res = await fetch(url('api/auth/providers'), {
      headers: { accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const data = await readJson(res);
    const providers: unknown[] = data && Array.isArray(data.providers) ? data.providers : [];
    const provider = providers.find(
      (p): p is { name?: unknown } =>
        !!p && typeof p === 'object' && !!(p as { supports_password?: unknown }).supports_password,
    );
    if (provider) {
      state.provider = String(provider.name);
    } else {
      form.hidden = true;
      note.textContent =
        'No password login is configured. On the host, run hermes dashboard set-password, then restart the dashboard.';
    }
  } catch {
    error.textContent = 'Cannot reach the dashboard server.';
  }
  const username = $<HTMLInputElement>('username');
  (username.value ? $('password') : username).focus();
}
async function submitLogin(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const username = $<HTMLInputElement>('username');
  const password = $<HTMLInputElement>('password');
  const error = $('login-error');
  const button = $<HTMLButtonElement>('login-submit');
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
  let res: Response | null = null;
  let data: ApiData | null = null;
  try {
    res = await fetch(url('auth/password-login'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      body: JSON.stringify({
        provider: state.provider || 'basic',
        username: username.value.trim(),
        password: password.value,
        next: '/',
      }),
    });
    data = await readJson(res);
  } catch {
    res = null;
  }
  button.disabled = false;
  button.textContent = 'Sign in';
  if (res?.ok && data?.ok) {
    password.value = '';
    csrfToken = null;
    state.attempt = 0;
    showView('dashboard');
    void connect();
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
async function logout(): Promise<void> {
  stopStream();
  csrfToken = null;
  try {
    await fetch(url('auth/logout'), {
      method: 'POST',
      credentials: 'same-origin',
      redirect: 'manual',
      cache: 'no-store',
    });
  } catch {
    // signed out locally either way
  }
  setConn('signed-out', 'Signed out');
  void showLogin('');
}

// --- actions -------------------------------------------------------------------------------
interface Action {
  title: string;
  confirm: string;
  confirmClass: string;
  /** Paragraphs of the confirmation; a one-element array is a muted one. */
  body(s: GatewayStatus | null): Rich;
  pending: string;
  request(): Promise<ApiResult>;
  done(d: ApiData | null): string;
  failed: string;
}
type ActionName = 'drain' | 'cancel' | 'restart';

const ACTIONS: Readonly<Record<ActionName, Action>> = {
  drain: {
    title: 'Drain the gateway?',
    confirm: 'Drain',
    confirmClass: 'btn primary',
    body(s) {
      const turns = Number(s?.active_agents) || 0;
      return [
        'The gateway stops accepting new turns: people who write to the agent get a short "draining for maintenance" reply. Turns that are already running are allowed to finish.',
        `Nothing restarts and no turn is interrupted. ${turns === 0 ? 'No turns are running right now.' : `${plural(turns, 'turn is', 'turns are')} running right now.`}`,
        ['Wait until active turns reach 0 before maintenance. Cancel the drain to accept turns again.'],
      ];
    },
    pending: 'Requesting a drain…',
    request: () => api('POST', 'api/gateway/drain', { action: 'drain' }),
    done(d) {
      const t = parseTime(d?.requested_at);
      return `Drain requested${t ? ` at ${clock(t)}` : ''}. New turns are refused; running turns finish.${d && d.draining === false ? ' (The drain marker is not active.)' : ''}`;
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
      return d?.was_draining
        ? 'Drain cancelled. The gateway accepts new turns again.'
        : 'No drain was active.';
    },
    failed: 'Cancel failed',
  },
  restart: {
    title: 'Restart the gateway?',
    confirm: 'Restart',
    confirmClass: 'btn danger-solid',
    body(s) {
      const timeout = Number(s?.restart_drain_timeout);
      const turns = Number(s?.active_agents) || 0;
      const wait =
        Number.isFinite(timeout) && timeout > 0
          ? `waits up to ${seconds(timeout)} (the drain timeout) for running turns to finish, then interrupts any that are still running`
          : 'interrupts running turns immediately (the drain timeout is 0 s)';
      return [
        `This is the force path: the gateway stops accepting turns, ${wait}, and starts again.`,
        turns === 0
          ? 'No turns are running right now.'
          : `${plural(turns, 'turn is', 'turns are')} running right now and may be interrupted.`,
        ['For a gentle restart, drain first and wait for 0 active turns.'],
      ];
    },
    pending: 'Starting the restart…',
    request: () => api('POST', 'api/gateway/restart'),
    done(d) {
      return `Restart started${d?.pid ? ` (helper process ${String(d.pid)})` : ''}. The gateway will reconnect shortly.`;
    },
    failed: 'Restart failed',
  },
};

function confirmAction(action: Action): Promise<boolean> {
  const dialog = $<HTMLDialogElement>('confirm');
  $('confirm-title').textContent = action.title;
  const body = $('confirm-body');
  body.replaceChildren(
    ...action
      .body(state.status)
      .map((line) => (typeof line === 'string' ? el('p', '', line) : el('p', 'muted', line[0]))),
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
function setResult(tone: string, message: string): void {
  const node = $('action-result');
  node.dataset.tone = tone;
  node.textContent = message;
}
async function runAction(name: ActionName): Promise<void> {
  const action = ACTIONS[name];
  if (!action || state.pending) return;
  if (!(await confirmAction(action))) return;
  state.pending = true;
  setResult('pending', action.pending);
  render();
  const result = await action.request();
  state.pending = false;
  if (result.ok) setResult('ok', action.done(result.data));
  else
    setResult(
      'error',
      `${action.failed}: ${result.status === 401 ? 'your session ended; sign in again.' : result.error}`,
    );
  render();
}

// --- boot ----------------------------------------------------------------------------------
function tick(): void {
  for (const node of document.querySelectorAll<HTMLElement>('time[data-rel]'))
    node.textContent = relative(Number(node.dataset.rel));
  for (const node of document.querySelectorAll<HTMLElement>('.turn-elapsed[data-since]'))
    node.textContent = elapsedText((Date.now() - Number(node.dataset.since)) / 1000);
  updateReconnectText();
  // A stream that went silent (no heartbeat) or a connect that hangs: drop it and reconnect.
  if (state.stream && state.retryAt === 0) {
    const silent = state.connectedAt ? Date.now() - state.lastByteAt : Date.now() - state.connectStartedAt;
    if (silent > (state.connectedAt ? STALE_STREAM_MS : CONNECT_TIMEOUT_MS)) state.stream.abort();
  }
}

$('btn-drain').addEventListener('click', () => void runAction('drain'));
$('btn-cancel').addEventListener('click', () => void runAction('cancel'));
$('btn-restart').addEventListener('click', () => void runAction('restart'));
$<HTMLFormElement>('login-form').addEventListener('submit', (event) => void submitLogin(event));
$('logout').addEventListener('click', () => void logout());
window.addEventListener('online', reconnectNow);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') reconnectNow();
});
window.setInterval(tick, 1000);
render();
showView(token || !config.loginRequired ? 'dashboard' : 'loading');
void connect();
