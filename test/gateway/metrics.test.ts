import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  Agent,
  AgentTurnInput,
  ConversationMessage,
  HistoryStore,
} from '../../src/gateway/agents/types.js';
import { abortError } from '../../src/gateway/agents/types.js';
import {
  GatewayMetrics,
  MetricsSettingError,
  metricsListenerFromEnv,
  opResultOf,
  startMetricsListener,
} from '../../src/gateway/metrics.js';
import { ReplyChannel } from '../../src/gateway/replies.js';
import { SessionManager } from '../../src/gateway/sessions.js';
import { egressDeclined, MessageEventSchema, placeholderDescriptor } from '../../src/protocol/index.js';
import { until } from '../support/poll.js';

/** The gateway's metrics against a SessionManager with a controllable agent (in process). */

const silent = pino({ level: 'silent' });

class ScriptedAgent implements Agent {
  readonly name = 'scripted';
  readonly pending: { input: AgentTurnInput; resolve: (text: string) => void; reject: (e: Error) => void }[] =
    [];
  async run(input: AgentTurnInput) {
    return new Promise<{ text: string }>((resolve, reject) => {
      input.signal.addEventListener('abort', () => reject(abortError()));
      this.pending.push({ input, resolve: (text) => resolve({ text }), reject });
    });
  }
}

class NoHistory implements HistoryStore {
  load(): ConversationMessage[] {
    return [];
  }
  append() {}
  close() {}
}

function event(text: string, chat = 'c1') {
  return MessageEventSchema.parse({
    text,
    message_id: `in-${text}`,
    source: { platform: 'webchat', chat_id: chat, chat_type: 'dm', user_id: 'u1' },
  });
}

async function sample(metrics: GatewayMetrics, name: string, labels = ''): Promise<number | undefined> {
  const text = await metrics.render();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

describe('gateway turn metrics', () => {
  it('count each way an accepted message ends, the turn durations, and the session queues', async () => {
    const metrics = new GatewayMetrics({ version: '9.9.9', defaultMetrics: false });
    const agent = new ScriptedAgent();
    let drain = false;
    const link = {
      descriptor: placeholderDescriptor('webchat'),
      send: async () => ({ success: true, message_id: 'm1' }),
    };
    const manager = new SessionManager({
      agent,
      history: new NoHistory(),
      replies: new ReplyChannel(link, 'webchat', silent),
      log: silent,
      keyOptions: {},
      externalDrainActive: () => drain,
      shutdown: () => 'none',
      onActiveChange: () => undefined,
      metrics,
    });
    metrics.sampleSessions(() => ({ active: manager.activeCount, ...manager.queueDepth() }));

    manager.handleInbound(event('one'));
    manager.handleInbound(event('two'));
    manager.handleInbound(event('three'));
    manager.handleInbound(event('elsewhere', 'c2'));
    await until(() => agent.pending.length === 2 || undefined);
    expect(await sample(metrics, 'hermes_gateway_active_turns')).toBe(2);
    expect(await sample(metrics, 'hermes_gateway_queued_events')).toBe(2);
    expect(await sample(metrics, 'hermes_gateway_session_queue_depth_max')).toBe(2);
    expect(await sample(metrics, 'hermes_gateway_turns_started_total')).toBe(2);

    agent.pending[0]?.resolve('fine'); // one: answered
    await until(() => agent.pending.length === 3 || undefined);
    agent.pending[2]?.reject(new Error('model down')); // two: failed
    await until(() => agent.pending.length === 4 || undefined);
    manager.handleInbound(event('/stop')); // three: stopped; the /stop itself: ignored
    agent.pending[1]?.resolve('ok'); // elsewhere: answered
    await until(async () =>
      (await sample(metrics, 'hermes_gateway_active_turns')) === 0 ? true : undefined,
    );
    drain = true;
    manager.handleInbound(event('during drain', 'c3')); // refused

    const finished = async (outcome: string) =>
      sample(metrics, 'hermes_gateway_turns_finished_total', `outcome="${outcome}"`);
    expect(await finished('answered')).toBe(2);
    expect(await finished('failed')).toBe(1);
    expect(await finished('stopped')).toBe(1);
    expect(await finished('ignored')).toBe(1);
    expect(await finished('refused')).toBe(1);
    expect(await finished('cut_by_shutdown')).toBe(0);
    expect(await sample(metrics, 'hermes_gateway_turns_started_total')).toBe(4);
    // Only turns that ran have a duration; refused and ignored messages have none.
    expect(await sample(metrics, 'hermes_gateway_turn_duration_seconds_count', 'outcome="answered"')).toBe(2);
    expect(await sample(metrics, 'hermes_gateway_turn_duration_seconds_count', 'outcome="failed"')).toBe(1);
    expect(
      await sample(metrics, 'hermes_gateway_turn_duration_seconds_count', 'outcome="refused"'),
    ).toBeUndefined();
    expect(await sample(metrics, 'hermes_gateway_queued_events')).toBe(0);
    expect(await sample(metrics, 'hermes_gateway_build_info', 'version="9.9.9"')).toBe(1);
  });

  it('classes op results as success, failed, ambiguous or declined', () => {
    expect(opResultOf({ success: true })).toBe('success');
    expect(opResultOf({ success: false, error: 'chat not found' })).toBe('failed');
    expect(opResultOf({ success: false, error: 'timed out', ambiguous: true })).toBe('ambiguous');
    expect(opResultOf(egressDeclined('webchat'))).toBe('declined');
  });

  it('show one relay state at a time', async () => {
    const metrics = new GatewayMetrics({ version: '1', defaultMetrics: false });
    expect(await sample(metrics, 'hermes_gateway_relay_state', 'state="connecting"')).toBe(1);
    metrics.setRelayState('retrying');
    expect(await sample(metrics, 'hermes_gateway_relay_state', 'state="connecting"')).toBe(0);
    expect(await sample(metrics, 'hermes_gateway_relay_state', 'state="retrying"')).toBe(1);
    expect(await sample(metrics, 'hermes_gateway_relay_connected')).toBe(0);
    metrics.setRelayState('connected');
    expect(await sample(metrics, 'hermes_gateway_relay_connected')).toBe(1);
  });
});

describe('metrics listener setting', () => {
  it('is off unless GATEWAY_METRICS_PORT is set, loopback by default, and a bad port is one line', () => {
    expect(metricsListenerFromEnv({})).toBeUndefined();
    expect(metricsListenerFromEnv({ GATEWAY_METRICS_PORT: ' ' })).toBeUndefined();
    expect(metricsListenerFromEnv({ GATEWAY_METRICS_PORT: '9464' })).toEqual({
      host: '127.0.0.1',
      port: 9464,
    });
    expect(metricsListenerFromEnv({ GATEWAY_METRICS_PORT: '9464', GATEWAY_METRICS_HOST: '0.0.0.0' })).toEqual(
      {
        host: '0.0.0.0',
        port: 9464,
      },
    );
    for (const bad of ['abc', '70000', '-1', '12.5'])
      expect(() => metricsListenerFromEnv({ GATEWAY_METRICS_PORT: bad })).toThrow(MetricsSettingError);
    expect(() => metricsListenerFromEnv({ GATEWAY_METRICS_PORT: 'abc' })).toThrow(
      'GATEWAY_METRICS_PORT must be a port number from 0 to 65535, got "abc"',
    );
  });

  it('serves the registry on GET /metrics only', async () => {
    const metrics = new GatewayMetrics({ version: '1', defaultMetrics: false });
    const listener = await startMetricsListener(metrics, { host: '127.0.0.1', port: 0 }, silent);
    closers.push(listener.close);
    const ok = await fetch(listener.url);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('hermes_gateway_turns_started_total 0');
    expect((await fetch(listener.url.replace('/metrics', '/'))).status).toBe(404);
  });
});
