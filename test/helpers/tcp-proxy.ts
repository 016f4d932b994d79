// A TCP proxy the test controls, standing for the network between one mirror node and its primary: `cut()`
// resets every connection through it and refuses new ones (a partition), `heal()` lets traffic through again.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  cut(): void;
  heal(): void;
  stop(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let partitioned = false;
  const server: Server = createServer((client) => {
    client.on('error', () => {});
    if (partitioned) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(a);
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      partitioned = true;
      for (const socket of open) socket.destroy();
    },
    heal() {
      partitioned = false;
    },
    async stop() {
      partitioned = true;
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
