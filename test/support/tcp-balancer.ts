import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * "Several connector instances behind one address" for tests: a TCP balancer on 127.0.0.1 that
 * hands each new connection to the next backend in turn, skipping backends that refuse the
 * connection (a killed instance). Bytes are passed through untouched, so WebSocket upgrades work.
 */
export interface TcpBalancer {
  url: string;
  port: number;
  /** Backend ports in rotation; replace to take one out or put one back. */
  backends: number[];
  stop(): Promise<void>;
}

export async function startTcpBalancer(backends: number[]): Promise<TcpBalancer> {
  const sockets = new Set<Socket>();
  let next = 0;
  const balancer: Partial<TcpBalancer> & { backends: number[] } = { backends: [...backends] };

  const dial = (client: Socket, tried: number): void => {
    const list = balancer.backends;
    if (tried >= list.length) {
      client.destroy();
      return;
    }
    const port = list[next++ % list.length] as number;
    const upstream = connect({ host: '127.0.0.1', port });
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    upstream.once('error', () => {
      if (!connected) dial(client, tried + 1);
    });
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    dial(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  balancer.port = port;
  balancer.url = `http://127.0.0.1:${port}`;
  balancer.stop = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return balancer as TcpBalancer;
}
