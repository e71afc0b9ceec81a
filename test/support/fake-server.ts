import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP server for a local platform fake on 127.0.0.1 at a random port. `make` builds the fake
 * once the port is known; requests before that answer 503, and a handler that throws answers 500
 * (the fake never crashes the test process).
 */
export async function startFakeServer<
  F extends { handle(req: IncomingMessage, res: ServerResponse): Promise<void> },
>(make: (server: Server, port: number) => F): Promise<F> {
  let fake: F | undefined;
  const server = createServer((req, res) => {
    if (!fake) {
      res.statusCode = 503;
      res.end();
      return;
    }
    fake.handle(req, res).catch(() => {
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake = make(server, (server.address() as AddressInfo).port);
  return fake;
}
