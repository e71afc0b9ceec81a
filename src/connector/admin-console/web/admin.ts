/**
 * The connector admin console's script (an ES module served from `/admin/assets/`). It asks for the
 * admin token, keeps it in this tab's sessionStorage and sends it as `Authorization: Bearer` to the
 * admin API (`/admin/api/…`, docs/admin-api.md); a 401 brings the token form back with the
 * answer's message. It shows the overview, gateways, tenants, routes, outbox, dead letters and the
 * audit log, runs the operator actions (irreversible ones behind a dialog where the id is typed
 * again; new secrets shown once, with a copy button), and reads `/admin/api/events` with fetch()
 * streaming (EventSource cannot send the header) to update counts and connection states live; the
 * stream's parser, stall limit and reconnect wait are shared with the dashboard (`./sse.js`, served
 * beside this script).
 *
 * Untrusted data (names, ids, error texts, audit details) reaches the DOM only through
 * `textContent` and `value`: no HTML sinks.
 */

import { eventJson, readEventStream, reconnectDelay, STALE_STREAM_MS, type StreamEvent } from './sse.js';

type Json = Record<string, unknown>;

interface Overview {
  version?: string;
  instance?: string;
  uptimeSeconds?: number;
  tenants?: number;
  gateways?: { total?: number; connected?: number; idle?: number; revoked?: number };
  outbox?: { depth?: number };
  deadLetters?: number;
}
interface Tenant {
  id: string;
  name: string;
  createdAt?: number;
}
interface Gateway {
  id: string;
  tenant: string;
  generation?: string;
  identities?: string[];
  platform?: string;
  endpoint?: string;
  idleSince: string | null;
  buffered: number;
  revoked?: boolean;
  rotating?: boolean;
  lastSeen: string | null;
  connected: boolean;
}
interface Route {
  platform: string;
  routeKey: string;
  tenantId: string;
  endpoint: string | null;
  gatewayId: string | null;
  createdAt?: number;
}
interface OutboxRow {
  tenantId: string;
  tenant: string | null;
  gatewayId: string | null;
  count: number;
}
interface DeadLetter {
  id: string;
  tenantId: string;
  kind?: string;
  reason?: string;
  attempts?: number;
  deadAt?: number;
}
interface AuditRow {
  at: string;
  event: string;
  tenantId: string | null;
  gatewayId: string | null;
  detail: Json | null;
}
interface Snapshot {
  overview?: Overview;
  gateways?: Pick<Gateway, 'id' | 'tenant' | 'connected' | 'idleSince' | 'buffered' | 'lastSeen'>[];
  outbox?: OutboxRow[];
}
interface ApiResult<T> {
  ok: boolean;
  status: number;
  data: T | null;
  error: string;
}

const API = '/admin/api';
const TOKEN_KEY = 'hermes-admin-token';

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`admin console: #${id} is missing`);
  return node as T;
}

const state: {
  token: string | null;
  tenants: Tenant[];
  gateways: Gateway[];
  stream: AbortController | null;
  attempt: number;
  retryTimer: number;
  lastByteAt: number;
  reloadGatewaysTimer: number;
  reloadDeadTimer: number;
  reloadTenantsTimer: number;
  /** The dead-letter count the table was last loaded for (the stream reloads it on a change). */
  deadCount: number | undefined;
} = {
  token: sessionStorage.getItem(TOKEN_KEY),
  tenants: [],
  gateways: [],
  stream: null,
  attempt: 0,
  retryTimer: 0,
  lastByteAt: 0,
  reloadGatewaysTimer: 0,
  reloadDeadTimer: 0,
  reloadTenantsTimer: 0,
  deadCount: undefined,
};

// --- small DOM helpers -----------------------------------------------------------------------
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
function button(
  label: string,
  className: string,
  onClick: () => Promise<void>,
  accessibleName?: string,
): HTMLButtonElement {
  const node = el('button', `btn small ${className}`.trim(), label);
  node.type = 'button';
  if (accessibleName) node.setAttribute('aria-label', accessibleName);
  // One run at a time: a second click while the first is still at work is ignored (not disabled,
  // which would drop the focus a dialog returns to this button).
  node.addEventListener('click', () => {
    if (node.getAttribute('aria-busy') === 'true') return;
    node.setAttribute('aria-busy', 'true');
    void onClick().finally(() => node.removeAttribute('aria-busy'));
  });
  return node;
}
/** Handle a form's submit, one at a time (a double click does not create two tenants). */
function onSubmit(id: string, handler: () => Promise<void>): void {
  const form = $<HTMLFormElement>(id);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return;
    form.setAttribute('aria-busy', 'true');
    void handler().finally(() => form.removeAttribute('aria-busy'));
  });
}
function cell(content: Node | string | number | null | undefined, className?: string): HTMLTableCellElement {
  const td = el('td', className);
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined || content === '' ? '—' : String(content);
  return td;
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
function timeNode(value: string | number | null | undefined): HTMLElement {
  const t = typeof value === 'number' ? value : Date.parse(value ?? '');
  if (!Number.isFinite(t)) return el('span', 'muted', 'never');
  const node = el('time');
  node.dateTime = new Date(t).toISOString();
  node.title = new Date(t).toLocaleString();
  node.dataset.rel = String(t);
  node.textContent = relative(t);
  return node;
}
function tenantName(id: string | null | undefined): string {
  if (!id) return '—';
  return state.tenants.find((t) => t.id === id)?.name ?? id;
}
function fillTable(id: string, rows: HTMLTableRowElement[], emptyText: string): void {
  // Each cell carries its column's name: a narrow screen shows the rows stacked, labelled by it.
  const labels = [...$(id).querySelectorAll('thead th')].map((th) => th.textContent ?? '');
  for (const row of rows) for (const [i, td] of [...row.cells].entries()) td.dataset.label = labels[i] ?? '';
  $(id)
    .querySelector('tbody')
    ?.replaceChildren(...rows);
  const empty = $(`${id}-empty`);
  empty.textContent = emptyText;
  empty.hidden = rows.length > 0;
}
function showResult(message: string, tone: 'ok' | 'bad' = 'ok'): void {
  const node = $('result');
  node.dataset.tone = tone;
  node.textContent = '';
  window.setTimeout(() => {
    node.textContent = message;
  }, 30);
}

// --- the API ---------------------------------------------------------------------------------
async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { authorization: `Bearer ${state.token ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(`${API}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    return { ok: false, status: 0, data: null, error: 'the connector cannot be reached' };
  }
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return { ok: true, status: response.status, data: data as T, error: '' };
  const error =
    data && typeof data === 'object' && typeof (data as Json).error === 'string'
      ? ((data as Json).error as string)
      : `HTTP ${response.status}`;
  if (response.status === 401) signOut(error);
  return { ok: false, status: response.status, data: null, error };
}

// --- sign in / out ---------------------------------------------------------------------------
function showConsole(on: boolean): void {
  $('login-view').hidden = on;
  $('console-view').hidden = !on;
  $('sign-out').hidden = !on;
}
function signOut(message: string): void {
  stopStream();
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showConsole(false);
  setLive('off', 'Not signed in');
  $('token-error').textContent = message;
  const input = $<HTMLInputElement>('token');
  input.value = '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  input.focus();
}
async function signIn(token: string): Promise<void> {
  state.token = token;
  const overview = await api<Overview>('GET', '/overview');
  if (!overview.ok) {
    if (overview.status !== 401) $('token-error').textContent = overview.error;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-error').textContent = '';
  $<HTMLInputElement>('token').value = '';
  $('token').removeAttribute('aria-invalid');
  showConsole(true);
  applyOverview(overview.data ?? {});
  await loadAll();
  connect();
}

// --- rendering -------------------------------------------------------------------------------
function setCount(id: string, value: number | undefined): void {
  const text = value === undefined ? '–' : String(value);
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}
function applyOverview(o: Overview): void {
  setCount('count-tenants', o.tenants);
  setCount('count-gateways', o.gateways?.total);
  setCount('count-connected', o.gateways?.connected);
  setCount('count-idle', o.gateways?.idle);
  setCount('count-revoked', o.gateways?.revoked);
  setCount('count-outbox', o.outbox?.depth);
  setCount('count-dead', o.deadLetters);
  const parts = ['Hermes Relay'];
  if (o.version) parts.push(`v${o.version}`);
  if (o.instance) parts.push(`instance ${o.instance}`);
  $('meta').textContent = parts.join(' · ');
}
function gatewayState(g: Gateway): [string, string] {
  if (g.revoked) return ['Revoked', 'bad'];
  if (g.connected) return ['Connected', 'ok'];
  if (g.idleSince) return ['Idle', 'idle'];
  return ['Not connected', 'warn'];
}
function renderGateways(): void {
  const rows = state.gateways.map((g) => {
    const tr = el('tr');
    tr.dataset.id = g.id;
    const [label, tone] = gatewayState(g);
    const badge = el('span', `badge tone-${tone}`, label);
    badge.dataset.field = 'state';
    const seen = cell(timeNode(g.lastSeen));
    seen.dataset.field = 'seen';
    const buffered = cell(g.buffered, 'num');
    buffered.dataset.field = 'buffered';
    const actions = el('td', 'actions');
    if (!g.revoked) {
      actions.append(
        button('Rotate secret', '', () => rotateGateway(g.id), `Rotate secret of ${g.id}`),
        button('Revoke', 'danger', () => revokeGateway(g.id), `Revoke ${g.id}`),
      );
    } else actions.textContent = '—';
    // "platform:botId"; a platform without a bot id (web chat) is shown by its name alone.
    const identities = (g.identities ?? []).map((i) => (i.endsWith(':') ? i.slice(0, -1) : i)).join(', ');
    tr.append(
      cell(el('code', '', g.id)),
      cell(tenantName(g.tenant)),
      cell(g.generation),
      cell(identities),
      cell(badge),
      seen,
      buffered,
      actions,
    );
    return tr;
  });
  fillTable('gateways', rows, 'No gateways yet: mint an enrollment token for a tenant and enroll one.');
}
function renderTenants(): void {
  const rows = state.tenants.map((t) => {
    const tr = el('tr');
    const actions = el('td', 'actions');
    actions.append(
      button('New token', '', () => tenantSecret(t, 'token'), `New token for ${t.name}`),
      button('Enrollment token', '', () => tenantSecret(t, 'enroll'), `Enrollment token for ${t.name}`),
      button('Rotate delivery key', '', () => tenantSecret(t, 'key'), `Rotate delivery key of ${t.name}`),
    );
    tr.append(cell(t.name), cell(el('code', '', t.id)), cell(timeNode(t.createdAt)), actions);
    return tr;
  });
  fillTable('tenants', rows, 'No tenants yet: create one above.');
  const select = $<HTMLSelectElement>('route-tenant');
  const chosen = select.value;
  select.replaceChildren(
    ...state.tenants.map((t) => {
      const option = el('option', '', t.name);
      option.value = t.id;
      return option;
    }),
  );
  if (state.tenants.some((t) => t.id === chosen)) select.value = chosen;
  // The audit log's filter: all tenants, or one.
  const filter = $<HTMLSelectElement>('audit-tenant');
  const filtered = filter.value;
  const all = el('option', '', 'All tenants');
  all.value = '';
  filter.replaceChildren(
    all,
    ...state.tenants.map((t) => {
      const option = el('option', '', t.name);
      option.value = t.id;
      return option;
    }),
  );
  filter.value = state.tenants.some((t) => t.id === filtered) ? filtered : '';
}
function renderRoutes(routes: Route[]): void {
  const rows = routes.map((r) => {
    const tr = el('tr');
    tr.append(
      cell(r.platform),
      cell(el('code', '', r.routeKey)),
      cell(tenantName(r.tenantId)),
      cell(r.endpoint, 'wrap'),
      cell(r.gatewayId),
      cell(timeNode(r.createdAt)),
    );
    return tr;
  });
  fillTable('routes', rows, 'No routes.');
}
function renderOutbox(outbox: OutboxRow[]): void {
  const rows = outbox.map((o) => {
    const tr = el('tr');
    tr.append(cell(o.tenant ?? o.tenantId), cell(o.gatewayId ?? 'any gateway'), cell(o.count, 'num'));
    return tr;
  });
  fillTable('outbox', rows, 'The outbox is empty.');
}
function renderDead(dead: DeadLetter[]): void {
  const rows = dead.map((d) => {
    const tr = el('tr');
    const actions = el('td', 'actions');
    actions.append(
      button('Retry', '', () => retryDead(d.id), `Retry ${d.id}`),
      button('Discard', 'danger', () => discardDead(d.id), `Discard ${d.id}`),
    );
    tr.append(
      cell(el('code', '', d.id)),
      cell(tenantName(d.tenantId)),
      cell(d.kind),
      cell(d.reason, 'wrap'),
      cell(d.attempts, 'num'),
      cell(timeNode(d.deadAt)),
      actions,
    );
    return tr;
  });
  fillTable('dead', rows, 'No dead letters.');
}
function renderAudit(rows: AuditRow[]): void {
  fillTable(
    'audit',
    rows.map((a) => {
      const tr = el('tr');
      tr.append(
        cell(timeNode(a.at)),
        cell(a.event),
        cell(tenantName(a.tenantId)),
        cell(a.gatewayId),
        cell(a.detail ? JSON.stringify(a.detail) : '', 'wrap detail'),
      );
      return tr;
    }),
    'No audit events.',
  );
}

// --- loading ---------------------------------------------------------------------------------
async function loadTenants(): Promise<void> {
  const r = await api<Tenant[]>('GET', '/tenants');
  if (r.ok && r.data) {
    state.tenants = r.data;
    renderTenants();
  }
}
async function loadGateways(): Promise<void> {
  const r = await api<Gateway[]>('GET', '/gateways');
  if (r.ok && r.data) {
    state.gateways = r.data;
    renderGateways();
  }
}
async function loadRoutes(): Promise<void> {
  const r = await api<Route[]>('GET', '/routes');
  if (r.ok && r.data) renderRoutes(r.data);
}
async function loadOutbox(): Promise<void> {
  const r = await api<OutboxRow[]>('GET', '/outbox');
  if (r.ok && r.data) renderOutbox(r.data);
}
async function loadDead(): Promise<void> {
  const r = await api<DeadLetter[]>('GET', '/dead-letters?limit=100');
  if (r.ok && r.data) {
    renderDead(r.data);
    state.deadCount = r.data.length < 100 ? r.data.length : undefined;
  }
}
async function loadAudit(): Promise<void> {
  const tenant = $<HTMLSelectElement>('audit-tenant').value;
  const r = await api<AuditRow[]>(
    'GET',
    `/audit?limit=100${tenant ? `&tenant=${encodeURIComponent(tenant)}` : ''}`,
  );
  if (r.ok && r.data) renderAudit(r.data);
}
async function loadOverview(): Promise<void> {
  const r = await api<Overview>('GET', '/overview');
  if (r.ok && r.data) applyOverview(r.data);
}
async function loadAll(): Promise<void> {
  await loadTenants();
  await Promise.all([loadGateways(), loadRoutes(), loadOutbox(), loadDead(), loadAudit()]);
}

// --- dialogs ---------------------------------------------------------------------------------
/** Ask the operator to type `id` again; resolves true when they did and confirmed. */
function confirmById(title: string, body: string, id: string, action: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>('confirm-dialog');
  const form = $<HTMLFormElement>('confirm-form');
  const input = $<HTMLInputElement>('confirm-input');
  const error = $('confirm-error');
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  $('confirm-title').textContent = title;
  $('confirm-body').textContent = body;
  $('confirm-label').textContent = `Type ${id} to confirm`;
  $('confirm-ok').textContent = action;
  input.value = '';
  input.removeAttribute('aria-invalid');
  error.textContent = '';
  return new Promise((resolve) => {
    let confirmed = false;
    const onSubmit = (event: SubmitEvent) => {
      event.preventDefault();
      if (input.value.trim() !== id) {
        error.textContent = `Type ${id} exactly to confirm.`;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      confirmed = true;
      dialog.close();
    };
    const onCancel = () => dialog.close();
    const onClose = () => {
      form.removeEventListener('submit', onSubmit);
      $('confirm-cancel').removeEventListener('click', onCancel);
      if (opener?.isConnected) opener.focus();
      resolve(confirmed);
    };
    form.addEventListener('submit', onSubmit);
    $('confirm-cancel').addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose, { once: true });
    dialog.showModal();
    input.focus();
  });
}

/** Show a secret once, with a copy button; focus returns to the opener on close. */
function showSecret(title: string, label: string, secret: string, extra: string): void {
  const dialog = $<HTMLDialogElement>('secret-dialog');
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  $('secret-title').textContent = title;
  $('secret-label').textContent = label;
  $<HTMLInputElement>('secret-value').value = secret;
  $('secret-extra').textContent = extra;
  $('secret-status').textContent = '';
  dialog.addEventListener(
    'close',
    () => {
      $<HTMLInputElement>('secret-value').value = '';
      if (opener?.isConnected) opener.focus();
      else $('main').focus();
    },
    { once: true },
  );
  dialog.showModal();
  $('secret-copy').focus();
}
async function copySecret(): Promise<void> {
  const input = $<HTMLInputElement>('secret-value');
  const status = $('secret-status');
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = 'Copied to the clipboard.';
  } catch {
    input.select();
    status.textContent = 'Copying is not allowed here: the secret is selected, press Ctrl+C (⌘C).';
  }
}

// --- actions ---------------------------------------------------------------------------------
async function revokeGateway(id: string): Promise<void> {
  const ok = await confirmById(
    `Revoke gateway ${id}?`,
    'Its sockets are closed at once and it can no longer connect. This cannot be undone.',
    id,
    'Revoke',
  );
  if (!ok) return;
  const r = await api<Json>('POST', `/gateways/${encodeURIComponent(id)}/revoke`, { confirm: id });
  if (!r.ok) return showResult(r.error, 'bad');
  showResult(`Gateway ${id} revoked.`);
  await Promise.all([loadGateways(), loadOverview(), loadAudit()]);
}
async function rotateGateway(id: string): Promise<void> {
  const r = await api<{ id: string; secret: string }>(
    'POST',
    `/gateways/${encodeURIComponent(id)}/rotate`,
    {},
  );
  if (!r.ok || !r.data) return showResult(r.error, 'bad');
  showResult(`The secret of ${id} was rotated.`);
  showSecret(
    `New secret for ${id}`,
    'Gateway secret',
    r.data.secret,
    'The old secret stays valid for 24 hours. Put the new one in the gateway’s settings.',
  );
  await Promise.all([loadGateways(), loadAudit()]);
}
async function tenantSecret(t: Tenant, kind: 'token' | 'enroll' | 'key'): Promise<void> {
  const base = `/tenants/${encodeURIComponent(t.id)}`;
  if (kind === 'token') {
    const r = await api<{ accessToken: string }>('POST', `${base}/tokens`, {});
    if (!r.ok || !r.data) return showResult(r.error, 'bad');
    showResult(`New access token for ${t.name}.`);
    showSecret(`New access token for ${t.name}`, 'Access token', r.data.accessToken, '');
  } else if (kind === 'enroll') {
    const r = await api<{ token: string; expiresAt: string }>('POST', `${base}/enroll-tokens`, {});
    if (!r.ok || !r.data) return showResult(r.error, 'bad');
    showResult(`Enrollment token for ${t.name} created.`);
    showSecret(
      `Enrollment token for ${t.name}`,
      'Enrollment token',
      r.data.token,
      `Valid until ${new Date(r.data.expiresAt).toLocaleString()}.`,
    );
  } else {
    const r = await api<{ deliveryKey: string }>('POST', `${base}/delivery-key/rotate`, {});
    if (!r.ok || !r.data) return showResult(r.error, 'bad');
    showResult(`The delivery key of ${t.name} was rotated.`);
    showSecret(
      `New delivery key for ${t.name}`,
      'Delivery key',
      r.data.deliveryKey,
      'The previous key stays valid for 24 hours.',
    );
  }
  await loadAudit();
}
async function retryDead(id: string): Promise<void> {
  const r = await api<Json>('POST', `/dead-letters/${encodeURIComponent(id)}/retry`, {});
  if (!r.ok) {
    showResult(r.error, 'bad');
    return loadDead();
  }
  showResult(`Dead letter ${id} is back in the outbox.`);
  await Promise.all([loadDead(), loadOverview(), loadOutbox(), loadAudit()]);
}
async function discardDead(id: string): Promise<void> {
  const ok = await confirmById(
    `Discard dead letter ${id}?`,
    'It is deleted for good and will never be delivered.',
    id,
    'Discard',
  );
  if (!ok) return;
  const r = await api<Json>('POST', `/dead-letters/${encodeURIComponent(id)}/discard`, { confirm: id });
  if (!r.ok) {
    showResult(r.error, 'bad');
    return loadDead();
  }
  showResult(`Dead letter ${id} discarded.`);
  await Promise.all([loadDead(), loadOverview(), loadAudit()]);
}
async function createTenant(): Promise<void> {
  const input = $<HTMLInputElement>('tenant-name');
  const name = input.value.trim();
  if (!name) {
    showResult('Enter a name for the new tenant.', 'bad');
    input.focus();
    return;
  }
  const r = await api<{ id: string; name: string; accessToken: string }>('POST', '/tenants', { name });
  if (!r.ok || !r.data) return showResult(r.error, 'bad');
  input.value = '';
  showResult(`Tenant ${r.data.name} created.`);
  await Promise.all([loadTenants(), loadOverview(), loadAudit()]);
  showSecret(`Tenant ${r.data.name} created`, 'Access token', r.data.accessToken, `Tenant id ${r.data.id}.`);
}
async function addRoute(): Promise<void> {
  const value = (id: string) => $<HTMLInputElement | HTMLSelectElement>(id).value.trim();
  const body: Record<string, string> = {
    tenant: value('route-tenant'),
    platform: value('route-platform'),
    key: value('route-key'),
  };
  if (!body.tenant || !body.platform || !body.key) {
    showResult('A route needs a tenant, a platform and a key.', 'bad');
    return;
  }
  const endpoint = value('route-endpoint');
  const gateway = value('route-gateway');
  if (endpoint) body.endpoint = endpoint;
  if (gateway) body.gateway = gateway;
  const r = await api<Route>('POST', '/routes', body);
  if (!r.ok) return showResult(r.error, 'bad');
  for (const id of ['route-key', 'route-endpoint', 'route-gateway']) $<HTMLInputElement>(id).value = '';
  showResult(`Route ${body.platform}:${body.key} added.`);
  await Promise.all([loadRoutes(), loadAudit()]);
}

// --- the live stream -------------------------------------------------------------------------
function setLive(kind: 'live' | 'reconnecting' | 'connecting' | 'off', text: string): void {
  const node = $('live');
  node.dataset.state = kind;
  const label = $('live-text');
  if (label.textContent !== text) label.textContent = text;
}
function stopStream(): void {
  window.clearTimeout(state.retryTimer);
  state.retryTimer = 0;
  const ctrl = state.stream;
  state.stream = null;
  ctrl?.abort();
}
function applySnapshot(s: Snapshot): void {
  if (s.overview) applyOverview(s.overview);
  // Dead letters arrive (or are handled by someone else): reload that table too.
  const dead = s.overview?.deadLetters;
  if (dead !== undefined && state.deadCount !== undefined && dead !== state.deadCount) {
    state.deadCount = dead;
    window.clearTimeout(state.reloadDeadTimer);
    state.reloadDeadTimer = window.setTimeout(() => void loadDead(), 300);
  }
  // A tenant created elsewhere (the CLI, another operator): reload the tenants (names, forms).
  const tenants = s.overview?.tenants;
  if (tenants !== undefined && tenants !== state.tenants.length) {
    window.clearTimeout(state.reloadTenantsTimer);
    state.reloadTenantsTimer = window.setTimeout(() => void loadTenants(), 300);
  }
  if (s.outbox) renderOutbox(s.outbox);
  if (!s.gateways) return;
  const known = new Set(state.gateways.map((g) => g.id));
  let unknown = s.gateways.some((g) => !known.has(g.id));
  for (const live of s.gateways) {
    const g = state.gateways.find((x) => x.id === live.id);
    if (!g) continue;
    Object.assign(g, live);
    const row = document.querySelector<HTMLTableRowElement>(`#gateways tr[data-id="${CSS.escape(g.id)}"]`);
    if (!row) {
      unknown = true;
      continue;
    }
    const [label, tone] = gatewayState(g);
    const badge = row.querySelector<HTMLElement>('[data-field="state"]');
    if (badge && badge.textContent !== label) {
      badge.textContent = label;
      badge.className = `badge tone-${tone}`;
    }
    row.querySelector('[data-field="seen"]')?.replaceChildren(timeNode(g.lastSeen));
    const buffered = row.querySelector('[data-field="buffered"]');
    if (buffered) buffered.textContent = String(g.buffered);
  }
  // A gateway enrolled, or revoked by someone else, since the table was loaded: fetch the full
  // rows (identities, revoked: the snapshot carries neither).
  const revoked = s.overview?.gateways?.revoked;
  const revokedHere = state.gateways.filter((g) => g.revoked).length;
  if (
    unknown ||
    s.gateways.length !== state.gateways.length ||
    (revoked !== undefined && revoked !== revokedHere)
  ) {
    window.clearTimeout(state.reloadGatewaysTimer);
    state.reloadGatewaysTimer = window.setTimeout(() => void loadGateways(), 300);
  }
}
function dispatch(message: StreamEvent): void {
  if (message.event !== 'snapshot') return;
  const snapshot = eventJson(message);
  // A malformed snapshot is skipped; the next one replaces it.
  if (snapshot && typeof snapshot === 'object') applySnapshot(snapshot as Snapshot);
}
async function readStream(ctrl: AbortController): Promise<void> {
  let response: Response;
  try {
    response = await fetch(`${API}/events`, {
      headers: { authorization: `Bearer ${state.token ?? ''}`, accept: 'text/event-stream' },
      cache: 'no-store',
      credentials: 'omit',
      signal: ctrl.signal,
    });
  } catch {
    return;
  }
  if (state.stream !== ctrl) return;
  if (response.status === 401) {
    let message = 'invalid admin token';
    try {
      const body = (await response.json()) as Json;
      if (typeof body.error === 'string') message = body.error;
    } catch {
      // keep the default
    }
    signOut(message);
    return;
  }
  if (!response.ok || !response.body) return;
  state.attempt = 0;
  state.lastByteAt = Date.now();
  setLive('live', 'Live');
  await readEventStream(response.body, {
    onEvent: dispatch,
    onChunk: () => {
      state.lastByteAt = Date.now();
    },
  });
}
function connect(): void {
  stopStream();
  if (!state.token) return;
  const ctrl = new AbortController();
  state.stream = ctrl;
  if ($('live').dataset.state !== 'reconnecting') setLive('connecting', 'Connecting');
  void readStream(ctrl).then(() => {
    if (state.stream !== ctrl || !state.token) return;
    const delay = reconnectDelay(state.attempt);
    state.attempt += 1;
    setLive('reconnecting', 'Reconnecting');
    state.retryTimer = window.setTimeout(connect, delay);
  });
}
function tick(): void {
  for (const node of document.querySelectorAll<HTMLTimeElement>('time[data-rel]')) {
    const text = relative(Number(node.dataset.rel));
    if (node.textContent !== text) node.textContent = text;
  }
  if (state.stream && state.lastByteAt && $('live').dataset.state === 'live') {
    if (Date.now() - state.lastByteAt > STALE_STREAM_MS) {
      state.lastByteAt = 0;
      state.stream.abort();
    }
  }
}

// --- start -----------------------------------------------------------------------------------
onSubmit('token-form', async () => {
  const token = $<HTMLInputElement>('token').value.trim();
  if (!token) {
    $('token-error').textContent = 'Enter the admin token.';
    $('token').setAttribute('aria-invalid', 'true');
    $('token').focus();
    return;
  }
  await signIn(token);
});
$('sign-out').addEventListener('click', () => signOut(''));
onSubmit('tenant-form', createTenant);
onSubmit('route-form', addRoute);
$('audit-tenant').addEventListener('change', () => void loadAudit());
$('audit-refresh').addEventListener(
  'click',
  () => void loadAudit().then(() => showResult('Audit log refreshed.')),
);
$('secret-copy').addEventListener('click', () => void copySecret());
$('secret-close').addEventListener('click', () => $<HTMLDialogElement>('secret-dialog').close());
window.setInterval(tick, 5000);
if (state.token) void signIn(state.token);
else $('token').focus();
