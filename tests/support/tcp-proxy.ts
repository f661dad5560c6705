/**
 * A TCP proxy the test controls, between a worker and the Temporal server. `freeze()` is a
 * network partition: bytes stop flowing both ways on the open connections (nothing is closed,
 * so neither side notices at once) and new connections are refused.
 */
import net from 'node:net';

export interface TcpProxy {
  /** `host:port` to connect to instead of the target. */
  address: string;
  freeze(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { host, port } = parseAddress(target);
  const pairs = new Set<[net.Socket, net.Socket]>();
  let frozen = false;

  const server = net.createServer((downstream) => {
    if (frozen) {
      downstream.destroy();
      return;
    }
    const upstream = net.connect({ host, port });
    const pair: [net.Socket, net.Socket] = [downstream, upstream];
    pairs.add(pair);
    const end = () => {
      downstream.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of pair) {
      socket.on('error', end);
      socket.on('close', end);
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const listening = server.address();
  if (!listening || typeof listening !== 'object') throw new Error('proxy is not listening');

  return {
    address: `127.0.0.1:${listening.port}`,
    freeze() {
      frozen = true;
      for (const [downstream, upstream] of pairs) {
        downstream.unpipe(upstream);
        upstream.unpipe(downstream);
        downstream.pause();
        upstream.pause();
      }
    },
    async close() {
      for (const [downstream, upstream] of pairs) {
        downstream.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseAddress(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  const port = Number(address.slice(separator + 1));
  if (separator < 0 || !Number.isInteger(port)) throw new Error(`not a host:port address: ${address}`);
  return { host: address.slice(0, separator), port };
}
