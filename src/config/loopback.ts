// Whether a listen address is reachable only from this machine. Pure.
import { isIP } from 'node:net';

/** True for `localhost`, 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}
