import { request } from 'node:http';
import { join } from 'node:path';
import { isJsonObject, isoUtc, readJsonFile, removeFile, writeFileAtomic } from '../home/atomic-file.js';
import { isProcessAlive } from '../home/pid-lock.js';
import { httpUrl } from './http.js';

/**
 * `$HERMES_HOME/proxy.json` — `{pid, host, port, provider, started_at}` (mode 0600) while a proxy
 * runs for that home; removed when it stops. `hermes proxy status` reads it and probes `/health`.
 */

const PROXY_STATE_FILE_NAME = 'proxy.json';

export interface ProxyState {
  pid: number;
  host: string;
  port: number;
  provider: string;
  started_at: string;
}

export type ProxyStateRead =
  | { kind: 'absent' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'ok'; state: ProxyState };

export function proxyStatePath(home: string): string {
  return join(home, PROXY_STATE_FILE_NAME);
}

export function writeProxyState(home: string, fields: Omit<ProxyState, 'started_at'>): ProxyState {
  const state: ProxyState = { ...fields, started_at: isoUtc() };
  writeFileAtomic(proxyStatePath(home), `${JSON.stringify(state)}\n`, 0o600);
  return state;
}

export function readProxyState(home: string): ProxyStateRead {
  const read = readJsonFile(proxyStatePath(home));
  if (read.kind !== 'ok') return read;
  const value = read.value;
  if (
    !isJsonObject(value) ||
    typeof value.pid !== 'number' ||
    typeof value.host !== 'string' ||
    typeof value.port !== 'number' ||
    typeof value.provider !== 'string'
  ) {
    return { kind: 'invalid', reason: 'missing pid/host/port/provider' };
  }
  return {
    kind: 'ok',
    state: {
      pid: value.pid,
      host: value.host,
      port: value.port,
      provider: value.provider,
      started_at: typeof value.started_at === 'string' ? value.started_at : '',
    },
  };
}

/** Remove proxy.json when it belongs to `pid` (another proxy's file is left alone). Synchronous. */
export function removeProxyState(home: string, pid: number = process.pid): boolean {
  const read = readProxyState(home);
  if (read.kind === 'ok' && read.state.pid !== pid) return false;
  if (read.kind === 'absent') return false;
  try {
    return removeFile(proxyStatePath(home));
  } catch {
    return false;
  }
}

/** A live proxy recorded for this home other than `self`, or undefined. */
export function liveProxyState(home: string, self: number = process.pid): ProxyState | undefined {
  const read = readProxyState(home);
  if (read.kind !== 'ok') return undefined;
  return read.state.pid !== self && isProcessAlive(read.state.pid) ? read.state : undefined;
}

/** Where a client reaches a proxy bound to `host` (wildcard binds are probed on loopback). */
export function reachableUrl(host: string, port: number): string {
  if (host === '0.0.0.0' || host === '') return httpUrl('127.0.0.1', port);
  if (host === '::' || host === '[::]') return httpUrl('::1', port);
  return httpUrl(host, port);
}

export interface HealthProbe {
  ok: boolean;
  status: number | null;
  body: Record<string, unknown> | null;
  error: string | null;
}

/** GET `<url>/health` with a short timeout; never throws. */
export function probeHealth(baseUrl: string, timeoutMs = 2_000): Promise<HealthProbe> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (probe: HealthProbe) => {
      if (settled) return;
      settled = true;
      resolve(probe);
    };
    const req = request(`${baseUrl}/health`, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) =>
        done({ ok: false, status: res.statusCode ?? null, body: null, error: error.message }),
      );
      res.on('end', () => {
        let body: Record<string, unknown> | null = null;
        try {
          const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          body = isJsonObject(parsed) ? parsed : null;
        } catch {
          body = null;
        }
        const status = res.statusCode ?? null;
        done({ ok: status === 200 && body?.status === 'ok', status, body, error: null });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code;
      done({ ok: false, status: null, body: null, error: code ?? error.message });
    });
    req.end();
  });
}
