// MQTT_URL turned into MQTT.js connect options with the WHATWG URL parser. MQTT.js parses a URL
// string with the legacy `url.parse`, which misreads what it cannot parse and makes Node print
// DEP0170 with the whole URL (password included) to stderr; given options, it parses nothing.
import type { IClientOptions } from 'mqtt';

/** The parts of IClientOptions that a broker URL sets. */
export type BrokerAddress = Pick<IClientOptions, 'protocol' | 'hostname' | 'port' | 'path' | 'username' | 'password'>;

/**
 * @param url MQTT_URL, already checked by config/url-check.ts (mqtt, mqtts, tcp, ssl, ws, wss).
 * @returns protocol, host (IPv6 without brackets), port (absent: the protocol's default), the path
 *   and query for ws/wss, and the user name and password percent-decoded when the URL has them.
 * @throws TypeError when `url` does not parse (the config check rules that out).
 */
export function brokerAddress(url: string): BrokerAddress {
  const u = new URL(url);
  const protocol = u.protocol.slice(0, -1) as NonNullable<IClientOptions['protocol']>;
  const path = u.pathname + u.search;
  return {
    protocol,
    hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(u.port !== '' ? { port: Number(u.port) } : {}),
    ...((protocol === 'ws' || protocol === 'wss') && path !== '' ? { path } : {}),
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
  };
}

/**
 * URL to reach the embedded broker listening on `host:port` from this machine: a wildcard
 * address (`0.0.0.0`, `::`) becomes the loopback address, an IPv6 address gets brackets.
 */
export function embeddedBrokerUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `mqtt://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
