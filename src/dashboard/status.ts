import { SqliteHistoryStore } from '../gateway/history.js';
import { gatewayStatus } from '../home/gateway-status.js';
import { conversationsPath } from '../home/home.js';
import { type RelayInfoEntry, runningTurns } from '../home/status-file.js';

/**
 * `GET /api/status` (lifecycle reference §2.4): the shared `gatewayStatus` in the dashboard's wire
 * names, plus how many sessions were active in the last hour.
 */

export interface GatewayStatusView {
  gateway_running: boolean;
  gateway_state: string | null;
  gateway_platforms: Record<string, unknown>;
  gateway_exit_reason: string | null;
  gateway_updated_at: string | null;
  active_agents: number;
  gateway_busy: boolean;
  gateway_drainable: boolean;
  active_sessions: number;
  gateway_pid: number | null;
}

/** A running turn as the dashboard lists it: `elapsed_s` is computed at read time. */
export interface TurnView {
  session: string;
  platform: string;
  chat_id: string;
  started_at: string;
  elapsed_s: number;
}

/** The running turns and the relay the gateway adopted; empty/null when it is not running. */
export interface GatewayWorkView {
  turns: TurnView[];
  relay: RelayInfoEntry | null;
}

export function gatewayWorkView(home: string, now = Date.now()): GatewayWorkView {
  const status = gatewayStatus(home);
  if (!status.running) return { turns: [], relay: null };
  const turns = runningTurns(status.record).map((turn) => {
    const started = Date.parse(turn.started_at);
    return {
      ...turn,
      elapsed_s: Number.isNaN(started) ? 0 : Math.max(0, Math.round((now - started) / 1000)),
    };
  });
  return { turns, relay: status.record?.relay ?? null };
}

const ACTIVE_SESSION_WINDOW_MS = 3600_000;

export function gatewayStatusView(home: string, now = Date.now()): GatewayStatusView {
  const status = gatewayStatus(home);
  return {
    gateway_running: status.running,
    gateway_state: status.state,
    gateway_platforms: status.platforms,
    gateway_exit_reason: status.exitReason,
    gateway_updated_at: status.updatedAt,
    active_agents: status.activeAgents,
    gateway_busy: status.busy,
    gateway_drainable: status.drainable,
    active_sessions: countActiveSessions(home, now),
    gateway_pid: status.pid,
  };
}

let cached: { home: string; at: number; count: number } | undefined;

/** Sessions with a message in the last hour, from the gateway's conversation store (cached 5 s). */
function countActiveSessions(home: string, now: number): number {
  if (cached && cached.home === home && now - cached.at < 5_000) return cached.count;
  const count = SqliteHistoryStore.countSessionsSince(
    conversationsPath(home),
    now - ACTIVE_SESSION_WINDOW_MS,
  );
  cached = { home, at: now, count };
  return count;
}
