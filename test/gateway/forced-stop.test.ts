import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inboxPath } from '../../src/home/home.js';
import { tempDir, until } from '../support/processes.js';
import { type RelayStack, startRelayStack } from '../support/relay-stack.js';
import { WebChatClient } from '../support/webchat-client.js';

/**
 * A forced stop is said (#18): Ctrl-C lets running turns finish; a second Ctrl-C cuts them, and the
 * chat is told so rather than left waiting, and the turn's inbox entry records what happened.
 */

const dir = tempDir('gateway-forced-stop');
let stack: RelayStack | undefined;

beforeAll(async () => {
  stack = await startRelayStack({
    dir: dir.path,
    platform: 'webchat',
    routeKey: 'forced',
    connectorEnv: {},
    agentEnv: { HERMES_AGENT: 'echo', HERMES_RESTART_DRAIN_TIMEOUT: '60' },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  dir.remove();
});

describe('a second Ctrl-C', () => {
  it('cuts the running turn, tells its chat, records it in the inbox, and the gateway exits cleanly', async () => {
    if (!stack) throw new Error('no stack');
    const visitor = new WebChatClient(stack.connector.url, 'forced', 'visitor-0777');
    await visitor.open();
    visitor.say('/slow 30 a reply that takes half a minute');
    await until(
      () => visitor.agentTexts().some((text) => text.length > 0) || undefined,
      15_000,
      'the reply started',
    );
    const exited = new Promise<number | null>((resolve) =>
      stack?.gateway.child.once('exit', (code) => resolve(code)),
    );
    stack.gateway.child.kill('SIGINT');
    await stack.gateway.waitFor(/stopping: letting running turns finish/);
    stack.gateway.child.kill('SIGINT');
    await until(
      () => visitor.agentTexts().find((text) => text.includes('Gateway shutting down')),
      15_000,
      'the chat told',
    );
    expect(await exited).toBe(0);
    expect(stack.gateway.output()).toMatch(/second interrupt: cutting the running turns now/);
    const db = new Database(inboxPath(stack.home), { readonly: true });
    try {
      const rows = db.prepare('SELECT state, outcome FROM inbox ORDER BY id').all();
      expect(rows).toEqual([{ state: 'done', outcome: 'cut_by_shutdown' }]);
    } finally {
      db.close();
    }
    visitor.close();
  });
});
