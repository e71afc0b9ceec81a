import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { readGatewayLiveness } from '../home/pid-lock.js';
import { isBusy, isDrainable, readRuntimeStatus } from '../home/status-file.js';

/**
 * `GET /api/status` (lifecycle reference §2.4): liveness from the PID record (never from
 * `updated_at`), state from `gateway_state.json`, busy/drainable through the shared helpers.
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

const ACTIVE_SESSION_WINDOW_MS = 3600_000;

export function gatewayStatusView(home: string, now = Date.now()): GatewayStatusView {
  const liveness = readGatewayLiveness(home);
  const record = readRuntimeStatus(home);
  const running = liveness.running;
  let state = record?.gateway_state ?? null;
  if (!running) state = state === 'startup_failed' ? 'startup_failed' : 'stopped';
  else if (state === null || state === 'stopped') state = 'running';
  const activeAgents = running ? Math.max(0, record?.active_agents ?? 0) : 0;
  return {
    gateway_running: running,
    gateway_state: state,
    gateway_platforms: running ? (record?.platforms ?? {}) : {},
    gateway_exit_reason: running ? null : (record?.exit_reason ?? null),
    gateway_updated_at: record?.updated_at ?? null,
    active_agents: activeAgents,
    gateway_busy: isBusy(running, state ?? '', activeAgents),
    gateway_drainable: isDrainable(running, state ?? ''),
    active_sessions: countActiveSessions(home, now),
    gateway_pid: running ? liveness.pid : null,
  };
}

let cached: { home: string; at: number; count: number } | undefined;

/** Sessions with a message in the last hour, from the gateway's conversation store (cached 5 s). */
function countActiveSessions(home: string, now: number): number {
  if (cached && cached.home === home && now - cached.at < 5_000) return cached.count;
  const path = join(home, 'state', 'conversations.db');
  let count = 0;
  if (existsSync(path)) {
    try {
      const db = new Database(path, { readonly: true, fileMustExist: true });
      try {
        const row = db
          .prepare('SELECT COUNT(DISTINCT session_key) AS n FROM messages WHERE created_at >= ?')
          .get(now - ACTIVE_SESSION_WINDOW_MS) as { n: number } | undefined;
        count = row?.n ?? 0;
      } finally {
        db.close();
      }
    } catch {
      count = 0;
    }
  }
  cached = { home, at: now, count };
  return count;
}
