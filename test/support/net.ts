// Local TCP helpers for the servers tests and dev tools start: a free port to give them, and
// whether one accepts connections yet.
import { connect, createServer } from 'node:net';

/** A port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Whether 127.0.0.1:`port` accepts a TCP connection now; the connection is closed at once. */
export function acceptsConnections(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      r(true);
    });
    s.on('error', () => r(false));
  });
}
