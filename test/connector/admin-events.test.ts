import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminEvents, type AdminSnapshot } from '../../src/connector/admin-console/events.js';
import { until } from '../support/poll.js';

/** The admin event stream on its own: a change announced by a mutation, and clients gone early. */

let app: FastifyInstance | undefined;
let events: AdminEvents | undefined;
afterEach(async () => {
  events?.stop();
  await app?.close();
  app = events = undefined;
});

function snapshotWith(deadLetters: number): AdminSnapshot {
  return {
    at: new Date().toISOString(),
    overview: {
      version: '0',
      instance: 'test',
      uptimeSeconds: 1,
      tenants: 0,
      gateways: { total: 0, connected: 0, idle: 0, revoked: 0 },
      outbox: { depth: 0 },
      deadLetters,
    },
    gateways: [],
    outbox: [],
  };
}

async function serve(snapshot: () => Promise<AdminSnapshot>): Promise<string> {
  // A check interval far longer than the test: only changed() can announce a change.
  events = new AdminEvents(snapshot, pino({ level: 'silent' }), { checkMs: 3_600_000, pingMs: 3_600_000 });
  const stream = events;
  app = Fastify();
  app.get('/events', async (_request, reply) => {
    if (!(await stream.add(reply))) return reply.code(429).send({ error: 'too many' });
  });
  return app.listen({ host: '127.0.0.1', port: 0 });
}

function reader(response: Response): () => Promise<AdminSnapshot> {
  const body = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return async () => {
    for (;;) {
      const end = buffered.indexOf('\n\n');
      if (end >= 0) {
        const data = /^data: (.*)$/m.exec(buffered.slice(0, end))?.[1];
        buffered = buffered.slice(end + 2);
        if (data) return JSON.parse(data) as AdminSnapshot;
        continue;
      }
      const { value, done } = await body.read();
      if (done) throw new Error('stream ended');
      buffered += decoder.decode(value, { stream: true });
    }
  };
}

describe('admin event stream', () => {
  it('sends the changed snapshot as soon as a mutation says so, not at the next interval', async () => {
    let deadLetters = 2;
    const url = await serve(async () => snapshotWith(deadLetters));
    const controller = new AbortController();
    const next = reader(await fetch(`${url}/events`, { signal: controller.signal }));
    try {
      expect((await next()).overview.deadLetters).toBe(2);
      deadLetters = 1;
      events?.changed();
      expect((await next()).overview.deadLetters).toBe(1);
      // A change and its undoing, each announced, are both sent.
      deadLetters = 0;
      events?.changed();
      deadLetters = 1;
      events?.changed();
      expect((await next()).overview.deadLetters).toBe(0);
      expect((await next()).overview.deadLetters).toBe(1);
    } finally {
      controller.abort();
    }
  });

  it('does not keep a client that left while its first snapshot was being read', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let asked = 0;
    const url = await serve(async () => {
      asked += 1;
      await gate;
      return snapshotWith(0);
    });
    const controller = new AbortController();
    const pending = fetch(`${url}/events`, { signal: controller.signal }).catch(() => undefined);
    await until(() => asked === 1, 5_000, 'the first snapshot to be asked for');
    controller.abort();
    await pending;
    const server = app?.server;
    const open = () =>
      new Promise<number>((resolve, reject) =>
        server?.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      );
    await until(async () => (await open()) === 0, 5_000, 'the server to see the client leave');
    release();
    // add() goes on in the microtasks after the snapshot resolves: all of them run before this.
    await new Promise((resolve) => setImmediate(resolve));
    expect(events?.listeners).toBe(0);
  });
});
