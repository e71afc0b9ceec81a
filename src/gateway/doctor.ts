import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { generateSecret, isUsableSecret, mintUpgradeToken, signDelivery } from '../auth/index.js';
import { errorMessage } from '../common/errors.js';
import { packageInfo } from '../common/package-info.js';
import { AUTH_FILE_NAME, CONFIG_FILE_NAME, type GatewayConfig } from '../home/config.js';
import { ENV_FILE_NAME } from '../home/env-file.js';
import { gatewayStatus } from '../home/gateway-status.js';
import { conversationsPath, inboxPath } from '../home/home.js';
import {
  CLOSE_UNAUTHORIZED,
  connectorHttpBase,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  INTERRUPT_DELIVERY_SUFFIX,
  interruptDeliveryBody,
  MAX_WS_MESSAGE_BYTES,
  relayDialUrl,
  UPGRADE_TOKEN_TTL_SECONDS,
} from '../protocol/index.js';
import { defaultGatewayId } from './enroll.js';
import { installedScopes, type ServiceScope, unitNameFor, unitPath } from './service/identity.js';
import { Systemctl } from './service/systemctl.js';
import { CONFIG_EXIT_CODE, timeoutStopSeconds, unitSetting, unitTimeoutStopSeconds } from './service/unit.js';

/**
 * `hermes doctor`: what stands between a gateway home and a working gateway, one check at a time,
 * each with a status, a one-line finding and — when not ok — the fix (a command or a setting).
 * Every check is a small function over injected dependencies; the CLI only parses and renders.
 *
 * Two kinds: offline checks (Node, native module, config, stores, ports, permissions, credentials
 * present), which `hermes gateway install` runs before writing a unit, and network checks against
 * the connector (credentials accepted, inbound path, clock skew). Nothing here changes the home or
 * the connector: stores are opened read-only, the relay dial never says `hello` (so the connector
 * never picks the socket for traffic), and the inbound self-delivery is an interrupt that names no
 * session (the receiver answers 200 and dispatches nothing). A fake chat message is never sent.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** What the checks need of `gatewayStatus()`: liveness and where the receiver listens. */
export interface RunState {
  running: boolean;
  pid: number | null;
  platforms: Record<string, { listener_base?: string | null | undefined }>;
}

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** One line: what was found. Never a secret. */
  detail: string;
  /** When not ok: what to do (a concrete command or setting). */
  fix?: string;
}

export interface DoctorReport {
  /** True when no check failed (warnings do not fail). */
  ok: boolean;
  checks: CheckResult[];
}

export function summarize(checks: CheckResult[]): DoctorReport {
  return { ok: checks.every((check) => check.status !== 'fail'), checks };
}

const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
const warn = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'warn',
  detail,
  fix,
});
const fail = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'fail',
  detail,
  fix,
});

/** Skew above this warns; above {@link CLOCK_FAIL_SECONDS} fails (see {@link checkClockSkew}). */
export const CLOCK_WARN_SECONDS = 30;
export const CLOCK_FAIL_SECONDS = 240;
const NETWORK_TIMEOUT_MS = 10_000;

/** `hermes[ --profile p] <rest>`: fixes name the command the operator would type. */
export function hermesCommand(profile: string | undefined, rest: string): string {
  return `hermes${profile ? ` --profile ${profile}` : ''} ${rest}`;
}

// ---------------------------------------------------------------------------------------------
// Node and the native module

/** `engines.node` of package.json (the build's or the source tree's), else the known floor. */
export function requiredNodeRange(): string {
  return packageInfo().nodeRange;
}

function versionParts(text: string): number[] {
  return (text.replace(/^[^\d]*/, '').match(/\d+/g) ?? []).slice(0, 3).map(Number);
}

/** `version` satisfies a `>=a.b[.c]` range (the only form package.json uses). */
export function satisfiesMinimum(version: string, range: string): boolean {
  const have = versionParts(version);
  const need = versionParts(range);
  for (let index = 0; index < 3; index++) {
    const a = have[index] ?? 0;
    const b = need[index] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

export function checkNodeVersion(
  version: string = process.versions.node,
  range: string = requiredNodeRange(),
): CheckResult {
  if (satisfiesMinimum(version, range)) return ok('node', `Node ${version} (needs ${range})`);
  return fail(
    'node',
    `Node ${version} is too old (needs ${range})`,
    `install Node ${range.replace(/^>=/, '')} or newer (e.g. \`nvm install 22\`), then reinstall hermes-relay with it`,
  );
}

/** better-sqlite3 loads its compiled addon on first use: open an in-memory database. */
export function checkNativeModule(
  open: () => { close: () => unknown } = () => new Database(':memory:'),
): CheckResult {
  try {
    open().close();
    return ok('native-module', 'better-sqlite3 loads (an in-memory database opened)');
  } catch (error) {
    return fail(
      'native-module',
      `better-sqlite3 does not load: ${firstLine(errorMessage(error))}`,
      'rebuild it for this Node: `npm rebuild better-sqlite3` in the hermes-relay install directory (or reinstall the package)',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/** The config as loaded by the CLI, or the one-line error that stopped it. */
export type LoadedConfig = { ok: true; config: GatewayConfig } | { ok: false; error: string };

export function checkConfig(loaded: LoadedConfig, profile?: string): CheckResult {
  if (!loaded.ok)
    return fail(
      'config',
      loaded.error,
      `fix the value named above (config.yaml or .env of this home), or rewrite it with \`${hermesCommand(profile, 'gateway setup')}\``,
    );
  const { config } = loaded;
  if (config.relayDisabledBy)
    return fail(
      'config',
      `the relay is turned off: ${config.relayDisabledBy} is false in ${config.configPath}`,
      `remove ${config.relayDisabledBy} from ${config.configPath} (it overrides GATEWAY_RELAY_URL)`,
    );
  if (!config.relayUrl)
    return fail(
      'config',
      'no relay configured (GATEWAY_RELAY_URL / gateway.relay_url)',
      `\`${hermesCommand(profile, 'gateway setup --relay-url https://<connector>')}\` or set GATEWAY_RELAY_URL in ${join(config.home, ENV_FILE_NAME)}`,
    );
  const warnings = config.warnings;
  if (warnings.length > 0)
    return warn(
      'config',
      `${warnings[0]}${warnings.length > 1 ? ` (and ${warnings.length - 1} more)` : ''}`,
      `correct the setting in ${config.configPath} or ${join(config.home, ENV_FILE_NAME)}`,
    );
  return ok('config', `relay ${config.relayUrl}, agent ${config.agent}`);
}

// ---------------------------------------------------------------------------------------------
// Stores

const STORE_TABLES: ReadonlyArray<{ label: string; path: (home: string) => string; table: string }> = [
  { label: 'inbox', path: inboxPath, table: 'inbox' },
  { label: 'history', path: conversationsPath, table: 'messages' },
];

/** Open read-only and name the tables; throws what SQLite says. Injectable for tests. */
export type StoreReader = (path: string) => string[];

export const readStoreTables: StoreReader = (path) => {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 2000');
    return (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
    ).map((row) => row.name);
  } finally {
    db.close();
  }
};

/**
 * The inbox and history SQLite files under `$HERMES_HOME/state`: each readable as a database with
 * its table. Absent files are fine (created, and migrated, at the first start); a table missing
 * from an existing file is created at the next start too, so only an unreadable file fails.
 */
export function checkStores(home: string, read: StoreReader = readStoreTables): CheckResult {
  const found: string[] = [];
  const later: string[] = [];
  for (const store of STORE_TABLES) {
    const path = store.path(home);
    if (!existsSync(path)) {
      later.push(store.label);
      continue;
    }
    try {
      const tables = read(path);
      found.push(tables.includes(store.table) ? store.label : `${store.label} (migrated at next start)`);
    } catch (error) {
      return fail(
        'stores',
        `${path} cannot be read as a database: ${firstLine(errorMessage(error))}`,
        `check its owner and mode (\`ls -l ${path}\`); if it is damaged, move it aside (\`mv ${path} ${path}.broken\`) and the gateway starts a new one`,
      );
    }
  }
  const parts = [
    found.length ? `${found.join(', ')} readable` : '',
    later.length ? `${later.join(', ')} not created yet (created at first start)` : '',
  ].filter(Boolean);
  return ok('stores', `${parts.join('; ')} in ${join(home, 'state')}`);
}

// ---------------------------------------------------------------------------------------------
// Ports

/** Whether `host:port` can be bound now (closed again at once). Injectable for tests. */
export type PortProbe = (host: string, port: number) => Promise<'free' | 'in_use' | { error: string }>;

export const probePort: PortProbe = (host, port) =>
  new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      resolve(error.code === 'EADDRINUSE' ? 'in_use' : { error: error.code ?? error.message }),
    );
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve('free')));
  });

/**
 * The receiver's port from the config. The dashboard has no port in the gateway config (it is a
 * flag of `hermes dashboard`), so there is nothing else to check here. A running gateway holding
 * its own port is fine.
 */
export async function checkPorts(
  config: GatewayConfig,
  status: RunState,
  probe: PortProbe = probePort,
): Promise<CheckResult> {
  const port = config.inboundPort;
  if (port === undefined) return ok('ports', 'no inbound port configured (outbound-only): nothing to bind');
  const where = `${config.inboundHost}:${port}`;
  const listening = Object.values(status.platforms).some((platform) => Boolean(platform.listener_base));
  if (status.running && listening)
    return ok('ports', `${where} is held by the running gateway (PID ${status.pid})`);
  const result = await probe(config.inboundHost, port);
  const busyFix = `free the port (see who holds it: \`ss -ltnp 'sport = :${port}'\`) or pick another with GATEWAY_RELAY_INBOUND_PORT`;
  if (result === 'in_use')
    return fail(
      'ports',
      status.running
        ? `${where} is held by another process: the running gateway's receiver could not start`
        : `${where} is already in use by another process`,
      busyFix,
    );
  if (result !== 'free')
    return fail(
      'ports',
      `cannot bind ${where}: ${result.error}`,
      `use a port above 1023 and an address of this machine (GATEWAY_RELAY_INBOUND_HOST / _PORT)`,
    );
  if (status.running)
    return warn(
      'ports',
      `${where} is free but the running gateway's receiver is not listening yet`,
      'it starts after the relay handshake and needs GATEWAY_RELAY_DELIVERY_KEY; see `hermes gateway status --deep`',
    );
  return ok('ports', `${where} is free for the receiver`);
}

// ---------------------------------------------------------------------------------------------
// Permissions

export interface FileMode {
  mode: number;
  uid: number;
  isDirectory: boolean;
}

/** `stat` of a path, or undefined when it does not exist. Injectable for tests. */
export type StatFn = (path: string) => FileMode | undefined;

export const statPath: StatFn = (path) => {
  try {
    const stat = statSync(path);
    return { mode: stat.mode & 0o7777, uid: stat.uid, isDirectory: stat.isDirectory() };
  } catch {
    return undefined;
  }
};

/** Files of a home that hold secrets or conversations: readable by their owner only. */
export function secretFiles(home: string): string[] {
  const files = [
    join(home, ENV_FILE_NAME),
    join(home, AUTH_FILE_NAME),
    join(home, 'dashboard-auth.json'),
    join(home, 'proxy.json'),
  ];
  for (const store of STORE_TABLES) {
    const path = store.path(home);
    files.push(path, `${path}-wal`, `${path}-shm`);
  }
  return files;
}

/** config.yaml holds a secret when it names one of the secret keys (then it must be 0600 too). */
function configHoldsSecret(text: string): boolean {
  return /^\s*(relay_secret|relay_delivery_key|client_secret)\s*:\s*\S/m.test(text);
}

/**
 * `$HERMES_HOME` not world-writable (anyone could plant a `.env` there), and the secret files
 * mode 0600 (or stricter). Group-writable homes only warn.
 */
export function checkPermissions(
  home: string,
  stat: StatFn = statPath,
  readText: (path: string) => string | undefined = readTextOrUndefined,
): CheckResult {
  const homeMode = stat(home);
  if (!homeMode) return ok('permissions', `${home} does not exist yet (created with mode 0700 at first use)`);
  if (homeMode.mode & 0o002)
    return fail(
      'permissions',
      `${home} is world-writable (mode ${octal(homeMode.mode)}): anyone could replace its .env`,
      `chmod 700 ${quotePath(home)}`,
    );
  const loose: string[] = [];
  const candidates = secretFiles(home);
  const configPath = join(home, CONFIG_FILE_NAME);
  const configText = readText(configPath);
  if (configText !== undefined && configHoldsSecret(configText)) candidates.push(configPath);
  for (const path of candidates) {
    const mode = stat(path);
    if (mode && !mode.isDirectory && mode.mode & 0o077) loose.push(`${path} (${octal(mode.mode)})`);
  }
  if (loose.length > 0)
    return fail(
      'permissions',
      `secret files readable by others: ${loose.join(', ')}`,
      `chmod 600 ${loose.map((entry) => quotePath(entry.replace(/ \(\d+\)$/, ''))).join(' ')}`,
    );
  if (typeof process.getuid === 'function' && homeMode.uid !== process.getuid())
    return warn(
      'permissions',
      `${home} belongs to uid ${homeMode.uid}, not to this user (uid ${process.getuid()})`,
      `run hermes as the home's owner, or \`chown -R $(id -u) ${quotePath(home)}\``,
    );
  if (homeMode.mode & 0o020)
    return warn(
      'permissions',
      `${home} is group-writable (mode ${octal(homeMode.mode)})`,
      `chmod 700 ${quotePath(home)}`,
    );
  return ok('permissions', `${home} mode ${octal(homeMode.mode)}; secret files are 0600`);
}

// ---------------------------------------------------------------------------------------------
// Credentials

export type CredentialSource =
  | { kind: 'pinned'; gatewayId: string; secret: string }
  | { kind: 'provisioned' }
  | { kind: 'none' };

/** What the gateway will dial with (runner.ts): a pinned id + secret, else self-provision, else nothing. */
export function credentialSource(config: GatewayConfig, hostname?: string): CredentialSource {
  if (isUsableSecret(config.relaySecret)) {
    return {
      kind: 'pinned',
      gatewayId: config.relayId ?? defaultGatewayId(hostname),
      secret: config.relaySecret,
    };
  }
  if (config.idp || isUsableSecret(config.portalToken)) return { kind: 'provisioned' };
  return { kind: 'none' };
}

function enrollFix(config: GatewayConfig, profile: string | undefined, connectorUrl?: string): string {
  const url = connectorUrl ?? config.relayUrl ?? 'https://<connector>';
  return `\`${hermesCommand(profile, `gateway enroll --token <enrollment token> --connector-url ${url}`)}\` (ask the connector operator for a token: \`hermes connector enroll-token create\`)`;
}

export function checkCredentialsPresent(config: GatewayConfig, profile?: string): CheckResult {
  if (config.managed && !isUsableSecret(config.relaySecret))
    return ok('credentials', 'managed gateway: the hosting platform provides the relay credential at start');
  const source = credentialSource(config);
  if (source.kind === 'pinned') {
    const deliveryKey = isUsableSecret(config.deliveryKey) ? ', delivery key set' : '';
    return ok(
      'credentials',
      `GATEWAY_RELAY_ID ${source.gatewayId} and GATEWAY_RELAY_SECRET set${deliveryKey}`,
    );
  }
  if (source.kind === 'provisioned')
    return ok(
      'credentials',
      `no pinned secret: the gateway self-provisions at start with its identity token (${config.idp ? 'identity provider' : 'HERMES_PORTAL_TOKEN / auth.json'})`,
    );
  return fail(
    'credentials',
    config.relayId
      ? `GATEWAY_RELAY_ID is set but GATEWAY_RELAY_SECRET is not: the gateway would dial unauthenticated`
      : 'no relay credentials (GATEWAY_RELAY_ID / GATEWAY_RELAY_SECRET) and no identity token',
    enrollFix(config, profile),
  );
}

// ---------------------------------------------------------------------------------------------
// Network: the relay dial

export type DialOutcome =
  | { kind: 'accepted' }
  | { kind: 'refused'; code: number; reason: string }
  | { kind: 'closed'; code: number; reason: string }
  | { kind: 'http'; status: number }
  | { kind: 'error'; message: string };

export type RelayDialer = (input: {
  url: string;
  gatewayId: string;
  secret: string;
  timeoutMs?: number;
}) => Promise<DialOutcome>;

/**
 * One authenticated dial of `/relay` with the gateway's own upgrade token (the one the transport
 * mints, transport.ts). The connector decides before completing the upgrade and, on refusal,
 * closes 4401 at once — before it reads anything we send. So a ping answered with a pong means
 * accepted; a 4401 close first means refused. No `hello` is sent: the socket never becomes a
 * delivery target, and a running gateway's own socket is untouched. Closed with 1000 right after.
 */
export const dialRelay: RelayDialer = ({ url, gatewayId, secret, timeoutMs = NETWORK_TIMEOUT_MS }) =>
  new Promise((resolve) => {
    let settled = false;
    let ws: WebSocket;
    const finish = (outcome: DialOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'hermes doctor');
      else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => finish({ kind: 'error', message: `no answer within ${Math.round(timeoutMs / 1000)} s` }),
      timeoutMs,
    );
    try {
      ws = new WebSocket(relayDialUrl(url), {
        headers: {
          authorization: `Bearer ${mintUpgradeToken(gatewayId, secret, UPGRADE_TOKEN_TTL_SECONDS)}`,
        },
        maxPayload: MAX_WS_MESSAGE_BYTES,
        handshakeTimeout: timeoutMs,
      });
    } catch (error) {
      clearTimeout(timer);
      resolve({ kind: 'error', message: errorMessage(error) });
      return;
    }
    ws.on('open', () => ws.ping());
    ws.on('pong', () => finish({ kind: 'accepted' }));
    ws.on('message', () => undefined);
    ws.on('unexpected-response', (_request, response) =>
      finish({ kind: 'http', status: response.statusCode ?? 0 }),
    );
    ws.on('error', (error) => finish({ kind: 'error', message: error.message }));
    ws.on('close', (code, reason) => {
      const text = reason.toString('utf8');
      finish(
        code === CLOSE_UNAUTHORIZED
          ? { kind: 'refused', code, reason: text }
          : { kind: 'closed', code, reason: text },
      );
    });
  });

export async function checkCredentialsAccepted(input: {
  config: GatewayConfig;
  profile?: string | undefined;
  connectorUrl: string | undefined;
  dial?: RelayDialer;
}): Promise<CheckResult> {
  const { config, profile } = input;
  const name = 'connector-auth';
  const url = input.connectorUrl;
  // The config check already fails for a missing URL; one failure per cause.
  if (!url)
    return warn(name, 'not dialed: no connector URL', 'set GATEWAY_RELAY_URL, or pass --connector-url URL');
  const source = credentialSource(config);
  if (source.kind === 'provisioned' || (config.managed && source.kind === 'none'))
    return warn(
      name,
      'not dialed: the credential is provisioned when the gateway starts, and the doctor does not provision one',
      `pin it with \`${hermesCommand(profile, 'gateway enroll …')}\` to have it checked, or check \`${hermesCommand(profile, 'gateway status')}\` after start`,
    );
  if (source.kind === 'none')
    return fail(name, 'not dialed: there is no credential to present', enrollFix(config, profile, url));
  const dialUrl = relayDialUrl(url);
  const outcome = await (input.dial ?? dialRelay)({
    url,
    gatewayId: source.gatewayId,
    secret: source.secret,
  });
  switch (outcome.kind) {
    case 'accepted':
      return ok(name, `${dialUrl} accepted gateway ${source.gatewayId} (authenticated dial)`);
    case 'refused':
      if (outcome.reason === 'expired')
        return fail(
          name,
          `${dialUrl} refused the upgrade token as expired (4401): this machine's clock is behind the connector's`,
          'sync the clock (`timedatectl set-ntp true`, or chrony/ntpd), then rerun `hermes doctor`',
        );
      return fail(
        name,
        `${dialUrl} refused gateway ${source.gatewayId} (4401 ${outcome.reason || 'unauthorized'}): the credential is wrong, revoked or unknown there`,
        enrollFix(config, profile, url),
      );
    case 'closed':
      return fail(
        name,
        `${dialUrl} closed the connection (${outcome.code}${outcome.reason ? ` ${outcome.reason}` : ''}) before answering`,
        'check that GATEWAY_RELAY_URL points at a hermes connector (its /relay WebSocket)',
      );
    case 'http':
      return fail(
        name,
        `${dialUrl} answered the upgrade with HTTP ${outcome.status}: not a relay WebSocket`,
        'check GATEWAY_RELAY_URL (`wss://host/relay` or `https://host`) and that proxies pass WebSocket upgrades',
      );
    case 'error':
      return fail(
        name,
        `cannot reach ${dialUrl}: ${outcome.message}`,
        `check GATEWAY_RELAY_URL and that the connector runs: \`curl ${connectorHttpBase(url)}/healthz\``,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Network: clock skew

/** `Date` of a connector answer and when we asked / heard (ms). Injectable for tests. */
export type ServerClock = (
  url: string,
) => Promise<{ date: string | null; sentAt: number; receivedAt: number }>;

export const fetchServerClock: ServerClock = async (url) => {
  const sentAt = Date.now();
  const response = await fetch(url, { signal: AbortSignal.timeout(NETWORK_TIMEOUT_MS), redirect: 'manual' });
  const receivedAt = Date.now();
  await response.body?.cancel().catch(() => undefined);
  return { date: response.headers.get('date'), sentAt, receivedAt };
};

/**
 * Local time against the connector's `Date` header (GET /healthz), taking the middle of the round
 * trip. Upgrade tokens live 300 s and the connector allows 60 s past expiry; signed deliveries are
 * accepted within 300 s of their timestamp. So: up to 30 s is ok (the `Date` header has 1 s
 * resolution, and small drift is normal), up to 240 s warns (still accepted, but drifting towards
 * refusals), beyond 240 s fails (tokens and deliveries start being refused at 300 s).
 */
export async function checkClockSkew(input: {
  connectorUrl: string | undefined;
  clock?: ServerClock;
}): Promise<CheckResult> {
  const name = 'clock';
  if (!input.connectorUrl)
    return warn(name, 'not checked: no connector URL', 'set GATEWAY_RELAY_URL, or pass --connector-url URL');
  const url = `${connectorHttpBase(input.connectorUrl)}/healthz`;
  let answer: Awaited<ReturnType<ServerClock>>;
  try {
    answer = await (input.clock ?? fetchServerClock)(url);
  } catch (error) {
    return warn(
      name,
      `not checked: cannot reach ${url} (${firstLine(errorMessage(error))})`,
      'check GATEWAY_RELAY_URL and that the connector runs',
    );
  }
  const server = answer.date ? Date.parse(answer.date) : Number.NaN;
  if (!Number.isFinite(server))
    return warn(
      name,
      `not checked: ${url} sent no usable Date header`,
      'a proxy in front of the connector may strip it; compare `date -u` on both machines',
    );
  const local = (answer.sentAt + answer.receivedAt) / 2;
  const skew = Math.round((local - server) / 1000);
  const magnitude = Math.abs(skew);
  const side = skew > 0 ? 'ahead of' : 'behind';
  const detail =
    magnitude <= 1 ? 'in step with the connector (±1 s)' : `${magnitude} s ${side} the connector`;
  const fix = 'sync the clock (`timedatectl set-ntp true`, or chrony/ntpd) on this machine or the connector';
  if (magnitude > CLOCK_FAIL_SECONDS)
    return fail(
      name,
      `${detail}: upgrade tokens (300 s) and signed deliveries are refused beyond 300 s`,
      fix,
    );
  if (magnitude > CLOCK_WARN_SECONDS)
    return warn(name, `${detail} (tokens live ${UPGRADE_TOKEN_TTL_SECONDS} s)`, fix);
  return ok(name, detail);
}

// ---------------------------------------------------------------------------------------------
// Network: the inbound path

/** POST `body` with headers; the status, or an error. Injectable for tests. */
export type Poster = (url: string, body: Buffer, headers: Record<string, string>) => Promise<number>;

export const postDelivery: Poster = async (url, body, headers) => {
  const response = await fetch(url, {
    method: 'POST',
    body,
    headers,
    signal: AbortSignal.timeout(NETWORK_TIMEOUT_MS),
    redirect: 'manual',
  });
  await response.body?.cancel().catch(() => undefined);
  return response.status;
};

function localReceiverUrl(config: GatewayConfig, status: Pick<RunState, 'platforms'>): string {
  const base = Object.values(status.platforms).find((platform) => platform.listener_base)?.listener_base;
  if (base) return base.replace(/\/+$/, '');
  const host = ['0.0.0.0', '::', ''].includes(config.inboundHost) ? '127.0.0.1' : config.inboundHost;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.inboundPort}`;
}

/**
 * The signed-HTTP inbound path, checked without touching any agent: two interrupts that name no
 * session, to `<endpoint>/interrupt` (what the connector calls; the local receiver when no public
 * endpoint is set). One is signed with a random key and must get 401 (the receiver verifies, as
 * the connector's forgery probe checks); one is signed with this home's delivery key and must get
 * 200 (the keys match end to end). An interrupt without a session key is answered 200 and
 * dispatches nothing (reference §3.3 step 4), so no chat ever sees it. Outbound-only gateways get
 * deliveries as frames on the relay socket: the dial check covers them.
 */
export async function checkInbound(input: {
  config: GatewayConfig;
  status: RunState;
  profile?: string | undefined;
  post?: Poster;
  now?: () => number;
}): Promise<CheckResult> {
  const { config, status, profile } = input;
  const name = 'inbound';
  if (config.inboundPort === undefined) {
    if (config.endpoint)
      return warn(
        name,
        `GATEWAY_RELAY_ENDPOINT is ${config.endpoint} but no inbound port is set: the receiver is off`,
        'set GATEWAY_RELAY_INBOUND_PORT (the port the endpoint forwards to), or unset GATEWAY_RELAY_ENDPOINT for outbound-only',
      );
    return ok(name, 'outbound-only: deliveries arrive as frames on the relay socket (see connector-auth)');
  }
  if (!isUsableSecret(config.deliveryKey))
    return fail(
      name,
      'an inbound port is set but GATEWAY_RELAY_DELIVERY_KEY is not: the receiver never starts without it',
      enrollFix(config, profile),
    );
  if (!status.running)
    return warn(
      name,
      'not checked: the gateway is not running, so its receiver is not listening',
      `start it (\`${hermesCommand(profile, 'gateway start')}\`), then rerun \`${hermesCommand(profile, 'doctor')}\``,
    );
  const target = `${config.endpoint || localReceiverUrl(config, status)}${INTERRUPT_DELIVERY_SUFFIX}`;
  const post = input.post ?? postDelivery;
  const body = Buffer.from(JSON.stringify(interruptDeliveryBody('', '', 'doctor')), 'utf8');
  const signed = async (key: string): Promise<number | string> => {
    const ts = Math.floor((input.now ?? Date.now)() / 1000);
    try {
      return await post(target, body, {
        'content-type': 'application/json',
        [HEADER_TIMESTAMP]: String(ts),
        [HEADER_SIGNATURE]: signDelivery(body, key, ts),
      });
    } catch (error) {
      return firstLine(errorMessage(error));
    }
  };
  const forged = await signed(generateSecret());
  if (typeof forged === 'string')
    return fail(
      name,
      `cannot reach the receiver at ${target}: ${forged}`,
      config.endpoint
        ? `check that ${config.endpoint} forwards to ${config.inboundHost}:${config.inboundPort} (reverse proxy, DNS, TLS)`
        : `check \`${hermesCommand(profile, 'gateway status --deep')}\`: the receiver starts after the relay handshake`,
    );
  if (forged >= 200 && forged < 300)
    return fail(
      name,
      `${target} ACCEPTED a delivery signed with a wrong key: it would accept anyone's forgeries`,
      'the endpoint is not this gateway’s receiver (or a proxy answers for it): point GATEWAY_RELAY_ENDPOINT at the receiver',
    );
  if (forged !== 401)
    return fail(
      name,
      `${target} answered HTTP ${forged} to a badly signed delivery (a receiver answers 401)`,
      `check that ${target} reaches this gateway's receiver (${config.inboundHost}:${config.inboundPort})`,
    );
  const genuine = await signed(config.deliveryKey);
  if (genuine === 200)
    return ok(
      name,
      `${target} verified a self-delivery signed with the delivery key and refused a forged one`,
    );
  if (genuine === 401)
    return fail(
      name,
      `${target} refused a delivery signed with GATEWAY_RELAY_DELIVERY_KEY: the running gateway uses another key`,
      `restart it to load the current .env: \`${hermesCommand(profile, 'gateway restart')}\``,
    );
  return fail(
    name,
    `${target} answered ${typeof genuine === 'number' ? `HTTP ${genuine}` : genuine} to a correctly signed self-delivery`,
    `see the gateway log (\`${hermesCommand(profile, 'gateway status --deep')}\`)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Service unit

export interface ServiceProbe {
  available: () => { available: true } | { available: false; reason: string };
  installed: () => ServiceScope[];
  unitText: (scope: ServiceScope) => string | undefined;
  /** `is-enabled` and `is-active` answers for the unit in `scope`. */
  state: (scope: ServiceScope) => { enabled: string; active: string };
}

export function systemdProbe(unit: string, env: NodeJS.ProcessEnv = process.env): ServiceProbe {
  const first = (text: string) => text.trim().split('\n')[0] ?? '';
  return {
    available: () => new Systemctl('user', env).availability(),
    installed: () => installedScopes(unit, env),
    unitText: (scope) => readTextOrUndefined(unitPath(scope, unit, env)),
    state: (scope) => {
      const systemctl = new Systemctl(scope, env);
      return {
        enabled: first(systemctl.run(['is-enabled', unit]).stdout) || 'unknown',
        active: systemctl.activeState(unit) || 'unknown',
      };
    },
  };
}

/** The systemd unit of this home: installed, enabled, active, and written by a current install. */
export function checkServiceUnit(input: {
  home: string;
  profile?: string | undefined;
  drainSeconds: number;
  probe?: ServiceProbe;
}): CheckResult {
  const name = 'service';
  const unit = unitNameFor(input.home);
  const probe = input.probe ?? systemdProbe(unit);
  const scopes = probe.installed();
  const install = hermesCommand(input.profile, 'gateway install');
  if (scopes.length === 0) {
    const availability = probe.available();
    if (!availability.available)
      return ok(
        name,
        `no systemd here (${availability.reason}); \`${hermesCommand(input.profile, 'gateway start')}\` runs it detached`,
      );
    return ok(name, `no unit installed (optional: \`${install}\` runs it as a user service)`);
  }
  const scope = scopes[0] as ServiceScope;
  const flag = scope === 'system' ? ' --system' : ' --user';
  const text = probe.unitText(scope) ?? '';
  if (!probe.available().available)
    return warn(
      name,
      `${unit} is installed (${scope}) but systemd is not running here`,
      `\`${hermesCommand(input.profile, 'gateway start')}\` runs it detached`,
    );
  const { enabled, active } = probe.state(scope);
  const where = `${unit} (${scope})`;
  if (active === 'failed')
    return fail(
      name,
      `${where} has failed`,
      `see why: \`journalctl${flag} -u ${unit} -n 50\`; after fixing, \`systemctl${flag} reset-failed ${unit} && ${hermesCommand(input.profile, 'gateway start')}\``,
    );
  if (unitSetting(text, 'RestartPreventExitStatus') !== String(CONFIG_EXIT_CODE))
    return warn(
      name,
      `${where} predates RestartPreventExitStatus=${CONFIG_EXIT_CODE}: a configuration error would restart-loop`,
      `\`${install} --force\``,
    );
  const stop = unitTimeoutStopSeconds(text);
  const expected = timeoutStopSeconds(input.drainSeconds);
  if (stop !== undefined && stop < expected)
    return warn(
      name,
      `${where} has TimeoutStopSec=${stop}s, below the drain timeout (expected >= ${expected}s)`,
      `\`${install} --force\``,
    );
  if (enabled !== 'enabled')
    return warn(
      name,
      `${where} is installed but ${enabled}: it will not start at boot`,
      `systemctl${flag} enable ${unit}`,
    );
  if (active !== 'active' && active !== 'activating' && active !== 'reloading')
    return warn(
      name,
      `${where} is enabled but ${active}`,
      `\`${hermesCommand(input.profile, 'gateway start')}\``,
    );
  return ok(name, `${where} enabled and ${active}`);
}

// ---------------------------------------------------------------------------------------------
// Running them

export interface DoctorInput {
  home: string;
  profile?: string | undefined;
  loaded: LoadedConfig;
  /** `--connector-url`, else the config's relay URL. */
  connectorUrl?: string | undefined;
}

export interface DoctorDeps {
  nodeVersion?: string;
  openNative?: () => { close: () => unknown };
  readStore?: StoreReader;
  probePort?: PortProbe;
  stat?: StatFn;
  status?: (home: string) => RunState;
  dial?: RelayDialer;
  clock?: ServerClock;
  post?: Poster;
  service?: ServiceProbe;
}

/**
 * What `hermes gateway install` runs before writing a unit: the checks that need no network and
 * decide whether the gateway would start (config parses, credentials present, permissions).
 */
export function offlineChecks(input: DoctorInput, deps: DoctorDeps = {}): CheckResult[] {
  const checks = [checkConfig(input.loaded, input.profile)];
  if (input.loaded.ok) checks.push(checkCredentialsPresent(input.loaded.config, input.profile));
  checks.push(checkPermissions(input.home, deps.stat));
  return checks;
}

/** Every check, in the order shown. */
export async function runDoctor(input: DoctorInput, deps: DoctorDeps = {}): Promise<DoctorReport> {
  const { home, profile, loaded } = input;
  const checks: CheckResult[] = [
    checkNodeVersion(deps.nodeVersion),
    checkNativeModule(deps.openNative),
    checkConfig(loaded, profile),
    checkStores(home, deps.readStore),
  ];
  const status = (deps.status ?? gatewayStatus)(home);
  if (loaded.ok) checks.push(await checkPorts(loaded.config, status, deps.probePort));
  checks.push(checkPermissions(home, deps.stat));
  if (loaded.ok) {
    const config = loaded.config;
    const connectorUrl = input.connectorUrl ?? config.relayUrl;
    checks.push(checkCredentialsPresent(config, profile));
    const [accepted, clock, inbound] = await Promise.all([
      checkCredentialsAccepted({ config, profile, connectorUrl, dial: deps.dial }),
      checkClockSkew({ connectorUrl, clock: deps.clock }),
      checkInbound({ config, status, profile, post: deps.post }),
    ]);
    checks.push(accepted, inbound, clock);
  }
  checks.push(
    checkServiceUnit({
      home,
      profile,
      drainSeconds: loaded.ok ? loaded.config.restartDrainTimeoutSeconds : 0,
      probe: deps.service,
    }),
  );
  return summarize(checks);
}

// ---------------------------------------------------------------------------------------------

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

function quotePath(path: string): string {
  return /^[\w./~-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

function readTextOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
