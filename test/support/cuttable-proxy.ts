import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/**
 * A TCP pass-through on 127.0.0.1 to `127.0.0.1:<port>` whose link can be cut and healed: a
 * network partition between one process and a server (e.g. one connector instance and Redis).
 * `cut()` destroys every connection through it, and until `heal()` each new connection is closed
 * as soon as it is accepted, so the client sees resets and failed reconnects, not a hang.
 */
export interface CuttableProxy {
  url: string;
  port: number;
  readonly isCut: boolean;
  /** Connections closed on arrival while cut. */
  readonly refused: number;
  cut(): void;
  heal(): void;
  stop(): Promise<void>;
}

export async function startCuttableProxy(port: number, scheme = 'tcp'): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  let isCut = false;
  let refused = 0;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = createServer((client) => {
    if (isCut) {
      refused++;
      client.on('error', () => undefined);
      client.destroy();
      return;
    }
    track(client);
    const upstream = connect({ host: '127.0.0.1', port });
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const own = (server.address() as AddressInfo).port;
  return {
    url: `${scheme}://127.0.0.1:${own}`,
    port: own,
    get isCut() {
      return isCut;
    },
    get refused() {
      return refused;
    },
    cut() {
      isCut = true;
      for (const socket of sockets) socket.destroy();
    },
    heal() {
      isCut = false;
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
