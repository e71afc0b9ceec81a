import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../support/poll.js';
import { hermes, type RunningProcess, startConnectorProcess, tempDir } from '../support/processes.js';
import { WebChatClient } from '../support/webchat-client.js';

/** `RELAY_WEBCHAT_RATE_LIMIT` as an operator sets it: on a real `hermes connector serve`. */

const dirs: { remove: () => void }[] = [];
const processes: RunningProcess[] = [];
const clients: WebChatClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proc of processes.splice(0)) await proc.stop();
  for (const dir of dirs.splice(0)) dir.remove();
});

describe('RELAY_WEBCHAT_RATE_LIMIT', () => {
  it('is the per-socket message rate of a running connector', async () => {
    const dir = tempDir('rate');
    dirs.push(dir);
    const connector = await startConnectorProcess(join(dir.path, 'connector.db'), {
      RELAY_WEBCHAT_RATE_LIMIT: '3/60',
    });
    processes.push(connector);
    const visitor = new WebChatClient(connector.url, 'rate-room', 'visitor-rate1');
    clients.push(visitor);
    await visitor.open();
    for (const text of ['one', 'two', 'three', 'four']) visitor.say(text);
    // Taken messages are echoed back as the visitor's own (whether or not an agent is routed);
    // the one over the limit gets the friendly error instead.
    const taken = () =>
      visitor.frames.filter((f) => f.type === 'message' && (f.message as { role: string }).role === 'user');
    const refused = () => visitor.frames.filter((f) => f.type === 'error');
    await until(() => taken().length + refused().length >= 4, 10_000, 'four answers');
    expect(taken().map((f) => (f.message as { text: string }).text)).toEqual(['one', 'two', 'three']);
    expect(refused()).toEqual([
      { type: 'error', message: 'You are sending messages too quickly. Please wait a few seconds.' },
    ]);
  });

  it('refuses to start with a value it cannot use, saying which and why', async () => {
    const dir = tempDir('rate-bad');
    dirs.push(dir);
    const result = await hermes(['connector', 'serve', '--port', '0', '--db', join(dir.path, 'c.db')], {
      RELAY_WEBCHAT_RATE_LIMIT: 'lots',
    });
    // 78 (EX_CONFIG): a configuration error, which the service unit does not restart.
    expect(result.code).toBe(78);
    expect(result.stderr).toBe(
      'hermes: RELAY_WEBCHAT_RATE_LIMIT must be <messages>/<seconds> with both above 0 (e.g. 10/10), got "lots"\n',
    );
  });
});
