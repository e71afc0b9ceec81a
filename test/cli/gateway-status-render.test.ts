import { describe, expect, it } from 'vitest';
import { renderGatewayStatus } from '../../src/cli/gateway-commands.js';
import type { GatewayStatus } from '../../src/home/gateway-status.js';

/** `hermes gateway status --deep` shows the per-platform details its help promises (#19). */

const running: GatewayStatus = {
  home: '/srv/hermes',
  running: true,
  pid: 4242,
  state: 'running',
  lastReportedState: 'running',
  activeAgents: 1,
  exitReason: null,
  updatedAt: '2026-12-04T10:00:00Z',
  platforms: {
    relay: {
      state: 'retrying',
      error_code: 'relay_unreachable',
      error_message: 'connection refused',
      needs_attention: true,
      retrying_since: '2026-12-04T09:59:00Z',
      ingress_url: 'https://gw.example/relay/inbound',
      listener_base: 'http://127.0.0.1:8801',
      updated_at: '2026-12-04T10:00:00Z',
      writer_pid: 4242,
      writer_start_time: 1,
    },
  },
  busy: true,
  drainable: true,
  record: null,
};

describe('gateway status rendering', () => {
  it('without --deep: state, turns and each platform on one line with its fix', () => {
    const lines = renderGatewayStatus('/srv/hermes', running, false);
    expect(lines).toEqual([
      '✓ Gateway is running (PID: 4242)',
      '  state: running',
      '  active turns: 1',
      '  relay: retrying — relay_unreachable: connection refused',
      '    fix: check GATEWAY_RELAY_URL and that the connector is running',
    ]);
  });

  it('with --deep: every detail the status record holds for each platform, then the home', () => {
    const lines = renderGatewayStatus('/srv/hermes', running, true);
    expect(lines.slice(5)).toEqual([
      '    needs attention: yes',
      '    retrying since: 2026-12-04T09:59:00Z',
      '    inbound URL (asserted to the connector): https://gw.example/relay/inbound',
      '    receiver listening on: http://127.0.0.1:8801',
      '    updated: 2026-12-04T10:00:00Z',
      '    written by PID: 4242',
      '  home: /srv/hermes',
      '  updated: 2026-12-04T10:00:00Z',
    ]);
  });
});
