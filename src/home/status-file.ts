import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  isJsonObject,
  isoUtc,
  parseIsoTimestamp,
  readJsonFile,
  removeFile,
  writeJsonAtomic,
} from './atomic-file.js';
import { currentProcessStartTime, GATEWAY_KIND } from './pid-lock.js';

/**
 * Runtime status file `$HERMES_HOME/gateway_state.json` (reference lifecycle §1.2) and the shared
 * busy/drainable derivation (§1.3).
 *
 * The writer is read–merge–write: only keys present in the patch are touched (a key set to
 * `undefined` counts as absent; `null` writes null), so a writer of `activeAgents` alone can never
 * clobber `gateway_state`. Every write re-stamps `pid, kind, argv, start_time, hermes_home` with the
 * current process and `updated_at` with now, and is atomic with compact JSON. `start_time` is
 * `currentProcessStartTime()` (see pid-lock.ts: clock ticks since boot on Linux, as the reference).
 */

export const STATUS_FILE_NAME = 'gateway_state.json';
/** A status older than this gives a "heartbeat stale" hint only — never a liveness verdict. */
const RUNTIME_STATUS_STALE_TTL_SECONDS = 120;

export type GatewayState = 'starting' | 'running' | 'draining' | 'stopped' | 'startup_failed' | 'degraded';
export type PlatformState =
  | 'connecting'
  | 'connected'
  | 'retrying'
  | 'paused'
  | 'failed'
  | 'disabled'
  | (string & {});
export type SessionStoreStatus = 'ok' | 'unavailable' | 'retrying' | 'unknown';

export interface PlatformStatusEntry {
  state?: PlatformState | null;
  error_code?: string | null;
  error_message?: string | null;
  needs_attention?: boolean;
  retrying_since?: string | null;
  ingress_url?: string | null;
  listener_base?: string | null;
  updated_at: string;
  writer_pid: number;
  writer_start_time: number | null;
  [key: string]: unknown;
}

/** A turn running now (`turns` in gateway_state.json; the dashboard lists them with a Stop). */
export interface RunningTurnEntry {
  session: string;
  platform: string;
  chat_id: string;
  /** ISO-8601 UTC. */
  started_at: string;
}

/** One platform identity on the relay socket and what its descriptor said. */
export interface RelayIdentityEntry {
  platform: string;
  bot_id: string;
  /** The platform its descriptor names (a `relay` hello gets the routed platform's). */
  descriptor_platform: string | null;
  /** The descriptor's label, once the connector sent one for this identity. */
  label: string | null;
  /** The ops adopted from its descriptor (`supported_ops`, else the legacy set); null before one. */
  ops: string[] | null;
}

/**
 * What the gateway adopted from the relay (`relay` in gateway_state.json): the generation —
 * `june` when deliveries come as signed HTTP posts to the inbound receiver, `current` when they
 * come on the socket — the identities said hello as, and the default descriptor's op list.
 */
export interface RelayInfoEntry {
  generation: 'june' | 'current';
  inbound: 'http' | 'socket';
  identities: RelayIdentityEntry[];
  ops: string[];
  contract_version: number | null;
}

export interface RuntimeStatus {
  pid: number;
  kind: string;
  argv: string[];
  start_time: number | null;
  hermes_home: string;
  gateway_state: GatewayState | (string & {}) | null;
  exit_reason: string | null;
  restart_requested: boolean;
  active_agents: number;
  active_work?: string[] | null;
  platforms: Record<string, PlatformStatusEntry>;
  session_store: { status: SessionStoreStatus | (string & {}) };
  updated_at: string | null;
  /** The turns running now (absent in records of older writers). */
  turns?: RunningTurnEntry[];
  relay?: RelayInfoEntry | null;
  [key: string]: unknown;
}

export interface PlatformStatusPatch {
  /** Key under `platforms` (multiplexed secondary profiles use `<profile>:<platform>`). */
  name: string;
  state?: PlatformState | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  needsAttention?: boolean;
  retryingSince?: string | null;
  ingressUrl?: string | null;
  listenerBase?: string | null;
}

export interface RuntimeStatusPatch {
  gatewayState?: GatewayState | null;
  exitReason?: string | null;
  restartRequested?: boolean;
  /** Coerced to an integer ≥ 0. */
  activeAgents?: number;
  activeWork?: string[] | null;
  sessionStore?: { status: SessionStoreStatus };
  platform?: PlatformStatusPatch;
  turns?: RunningTurnEntry[];
  relay?: RelayInfoEntry | null;
}

function statusFilePath(home: string): string {
  return join(home, STATUS_FILE_NAME);
}

function identity(home: string) {
  return {
    pid: process.pid,
    kind: GATEWAY_KIND,
    argv: [...process.argv],
    start_time: currentProcessStartTime(),
    hermes_home: home,
  };
}

/** The record a first write starts from (`gateway_state: "starting"`). */
function freshRuntimeStatus(home: string, now: Date | number = Date.now()): RuntimeStatus {
  return {
    ...identity(home),
    gateway_state: 'starting',
    exit_reason: null,
    restart_requested: false,
    active_agents: 0,
    platforms: {},
    session_store: { status: 'unknown' },
    updated_at: isoUtc(now),
  };
}

function coerceActiveAgents(value: unknown): number {
  const count = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(count) ? Math.max(0, Math.trunc(count)) : 0;
}

/** Legacy epoch floats → ISO; an ISO string is kept; anything else → null (`normalize_updated_at`). */
function normalizeUpdatedAt(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) return isoUtc(value * 1000);
  if (typeof value === 'string' && !Number.isNaN(parseIsoTimestamp(value))) return value;
  return null;
}

function normalize(value: Record<string, unknown>): RuntimeStatus {
  const platforms: Record<string, PlatformStatusEntry> = {};
  if (isJsonObject(value.platforms)) {
    for (const [name, entry] of Object.entries(value.platforms)) {
      if (isJsonObject(entry)) platforms[name] = entry as PlatformStatusEntry;
    }
  }
  const sessionStore = isJsonObject(value.session_store) ? value.session_store : {};
  return {
    ...value,
    pid: typeof value.pid === 'number' ? value.pid : 0,
    kind: typeof value.kind === 'string' ? value.kind : GATEWAY_KIND,
    argv: Array.isArray(value.argv) ? value.argv.map(String) : [],
    start_time: typeof value.start_time === 'number' ? value.start_time : null,
    hermes_home: typeof value.hermes_home === 'string' ? value.hermes_home : '',
    gateway_state: typeof value.gateway_state === 'string' ? value.gateway_state : null,
    exit_reason: typeof value.exit_reason === 'string' ? value.exit_reason : null,
    restart_requested: value.restart_requested === true,
    active_agents: coerceActiveAgents(value.active_agents),
    platforms,
    session_store: { status: typeof sessionStore.status === 'string' ? sessionStore.status : 'unknown' },
    updated_at: normalizeUpdatedAt(value.updated_at),
  };
}

/** Read `gateway_state.json`; never throws (absent, unreadable or not a JSON object → null). */
export function readRuntimeStatus(home: string): RuntimeStatus | null {
  try {
    const read = readJsonFile(statusFilePath(home));
    return read.kind === 'ok' && isJsonObject(read.value) ? normalize(read.value) : null;
  } catch {
    return null;
  }
}

/**
 * Read–merge–write `gateway_state.json` (see the module comment). Returns the record written.
 * Throws on I/O failure; the gateway's wrappers treat status writes as best effort.
 */
export function writeRuntimeStatus(
  home: string,
  patch: RuntimeStatusPatch,
  now: Date | number = Date.now(),
): RuntimeStatus {
  const read = readJsonFile(statusFilePath(home));
  const current =
    read.kind === 'ok' && isJsonObject(read.value) ? normalize(read.value) : freshRuntimeStatus(home, now);
  const updatedAt = isoUtc(now);
  const next: RuntimeStatus = { ...current, ...identity(home), updated_at: updatedAt };

  if (patch.gatewayState !== undefined) next.gateway_state = patch.gatewayState;
  if (patch.exitReason !== undefined) next.exit_reason = patch.exitReason;
  if (patch.restartRequested !== undefined) next.restart_requested = patch.restartRequested === true;
  if (patch.activeAgents !== undefined) next.active_agents = coerceActiveAgents(patch.activeAgents);
  if (patch.activeWork !== undefined)
    next.active_work = patch.activeWork === null ? null : [...patch.activeWork];
  if (patch.sessionStore !== undefined) next.session_store = { status: patch.sessionStore.status };
  if (patch.turns !== undefined) next.turns = patch.turns.map((turn) => ({ ...turn }));
  if (patch.relay !== undefined) next.relay = patch.relay;

  const platform = patch.platform;
  if (platform !== undefined) {
    const entry: PlatformStatusEntry = {
      ...(current.platforms[platform.name] ?? {}),
      updated_at: updatedAt,
      writer_pid: process.pid,
      writer_start_time: currentProcessStartTime(),
    };
    if (platform.state !== undefined) entry.state = platform.state;
    if (platform.errorCode !== undefined) entry.error_code = platform.errorCode;
    if (platform.errorMessage !== undefined) entry.error_message = platform.errorMessage;
    if (platform.needsAttention !== undefined) entry.needs_attention = platform.needsAttention === true;
    if (platform.retryingSince !== undefined) entry.retrying_since = platform.retryingSince;
    if (platform.ingressUrl !== undefined) entry.ingress_url = platform.ingressUrl;
    if (platform.listenerBase !== undefined) entry.listener_base = platform.listenerBase;
    next.platforms = { ...current.platforms, [platform.name]: entry };
  }

  writeJsonAtomic(statusFilePath(home), next, 0o644);
  return next;
}

/** "Heartbeat stale" hint: `updated_at` older than 120 s. Never use it as a liveness verdict. */
export function isRuntimeStatusStale(status: RuntimeStatus, now: number = Date.now()): boolean {
  const updated = parseIsoTimestamp(status.updated_at);
  return Number.isNaN(updated) || now - updated > RUNTIME_STATUS_STALE_TTL_SECONDS * 1000;
}

/**
 * §1.3, the one shared derivation (`/api/status`, `/health/detailed`, `hermes gateway status`):
 * drainable = running && state == "running". `running` is liveness (PID record + alive check),
 * never derived from `updated_at`.
 */
export function isDrainable(running: boolean, state: string | null | undefined): boolean {
  return running && state === 'running';
}

/** busy = drainable && active_agents > 0. While draining both are false: poll `active_agents`. */
export function isBusy(
  running: boolean,
  state: string | null | undefined,
  activeAgents: number | null | undefined,
): boolean {
  return isDrainable(running, state) && typeof activeAgents === 'number' && activeAgents > 0;
}

/** The running turns a record lists; entries of the wrong shape are skipped. */
export function runningTurns(status: RuntimeStatus | null): RunningTurnEntry[] {
  if (!status || !Array.isArray(status.turns)) return [];
  return status.turns.filter(
    (turn): turn is RunningTurnEntry =>
      isJsonObject(turn) &&
      typeof turn.session === 'string' &&
      typeof turn.platform === 'string' &&
      typeof turn.chat_id === 'string' &&
      typeof turn.started_at === 'string',
  );
}

/**
 * Stop requests for single turns (the dashboard's Stop). There is no control channel into a
 * running gateway (lifecycle reference §1.4): like the drain marker, a file in the home is the
 * channel. The dashboard writes one small 0600 file per request into `.turn-stop-requests/`; the
 * gateway takes them (read, then remove) a few times a second and stops each named turn the way
 * `/stop` does. A request older than `TURN_STOP_REQUEST_MAX_AGE_MS` is dropped unread-as-stale, so
 * a request left behind by a gateway that was down never stops a later turn of that session.
 */
export const TURN_STOP_DIR = '.turn-stop-requests';
export const TURN_STOP_REQUEST_MAX_AGE_MS = 30_000;

export interface TurnStopRequest {
  session: string;
  principal: string;
  requested_at: string;
}

export function writeTurnStopRequest(
  home: string,
  session: string,
  principal: string,
  now: number = Date.now(),
): TurnStopRequest {
  const dir = join(home, TURN_STOP_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const request: TurnStopRequest = { session, principal, requested_at: isoUtc(now) };
  writeJsonAtomic(join(dir, `${now}-${randomBytes(6).toString('hex')}.json`), request, 0o600);
  return request;
}

/** Take (and remove) the pending stop requests, oldest first; stale or malformed ones are dropped. */
export function takeTurnStopRequests(home: string, now: number = Date.now()): TurnStopRequest[] {
  const dir = join(home, TURN_STOP_DIR);
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.json'));
  } catch {
    return [];
  }
  const taken: TurnStopRequest[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    const read = readJsonFile(path);
    removeFile(path);
    if (read.kind !== 'ok' || !isJsonObject(read.value)) continue;
    const { session, principal, requested_at } = read.value;
    if (typeof session !== 'string' || session.length === 0) continue;
    const at = parseIsoTimestamp(requested_at);
    if (Number.isNaN(at) || now - at > TURN_STOP_REQUEST_MAX_AGE_MS) continue;
    taken.push({
      session,
      principal: typeof principal === 'string' ? principal : 'dashboard',
      requested_at: String(requested_at),
    });
  }
  return taken;
}
