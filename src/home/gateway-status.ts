import { readGatewayLiveness } from './pid-lock.js';
import {
  isBusy,
  isDrainable,
  type PlatformStatusEntry,
  type RuntimeStatus,
  readRuntimeStatus,
} from './status-file.js';

/**
 * A gateway's status as every reader shows it (`hermes gateway status`, `hermes gateway list`,
 * the dashboard's `/api/status`; lifecycle reference §2.4): liveness from the PID record, never from
 * `updated_at`; state from `gateway_state.json`, corrected by liveness. A process that died without
 * writing its final state is `stopped` (or `startup_failed`), not the state it last reported.
 */
export interface GatewayStatus {
  home: string;
  running: boolean;
  /** Null when not running. */
  pid: number | null;
  /** The effective state: the recorded one while running, else `stopped` or `startup_failed`. */
  state: string | null;
  /** What the gateway last wrote, as written (null when it never wrote a status). */
  lastReportedState: string | null;
  activeAgents: number;
  /** Why the last run ended; null while running. */
  exitReason: string | null;
  updatedAt: string | null;
  /** Per-platform connection state; empty when not running. */
  platforms: Record<string, PlatformStatusEntry>;
  busy: boolean;
  drainable: boolean;
  /** The raw record, for `--deep` views. */
  record: RuntimeStatus | null;
}

export function gatewayStatus(home: string): GatewayStatus {
  const liveness = readGatewayLiveness(home);
  const record = readRuntimeStatus(home);
  const running = liveness.running;
  const lastReportedState = record?.gateway_state ?? null;
  let state = lastReportedState;
  if (!running) state = state === 'startup_failed' ? 'startup_failed' : 'stopped';
  else if (state === null || state === 'stopped') state = 'running';
  const activeAgents = running ? Math.max(0, record?.active_agents ?? 0) : 0;
  return {
    home,
    running,
    pid: running ? liveness.pid : null,
    state,
    lastReportedState,
    activeAgents,
    exitReason: running ? null : (record?.exit_reason ?? null),
    updatedAt: record?.updated_at ?? null,
    platforms: running ? (record?.platforms ?? {}) : {},
    busy: isBusy(running, state, activeAgents),
    drainable: isDrainable(running, state),
    record,
  };
}

/** The status as the CLI prints it in JSON (`hermes gateway status --json`, `gateway list --json`). */
export interface GatewayStatusJson {
  home: string;
  running: boolean;
  pid: number | null;
  gateway_state: string | null;
  active_agents: number;
  exit_reason: string | null;
  updated_at: string | null;
}

export function gatewayStatusJson(status: GatewayStatus): GatewayStatusJson {
  return {
    home: status.home,
    running: status.running,
    pid: status.pid,
    gateway_state: status.state,
    active_agents: status.activeAgents,
    exit_reason: status.exitReason,
    updated_at: status.updatedAt,
  };
}
