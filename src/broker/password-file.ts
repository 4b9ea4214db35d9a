// Mosquitto's password file, read by the embedded broker so that one file and one tool
// (`mosquitto_passwd`) serve both brokers. Lines are `username:hash`; Mosquitto 2.0 writes
// `$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, 64 bytes, base64>` and still reads the
// older `$6$<salt>$<SHA-512(password ‖ salt)>` (mosquitto `src/password_mosq.c`, `pw__verify`).
import { createHash, pbkdf2, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** One user's stored hash, decoded. */
export type PasswordHash =
  | { readonly type: 'pbkdf2-sha512'; readonly iterations: number; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly type: 'sha512'; readonly salt: Buffer; readonly hash: Buffer };

/** A parsed file: users, and the lines that could not be used (1-based number and why; never the line). */
export interface PasswordFile {
  readonly users: ReadonlyMap<string, PasswordHash>;
  readonly problems: readonly string[];
}

/** Upper bound on `$7$` iterations accepted from a file (Mosquitto writes 101 by default). */
const MAX_ITERATIONS = 1_000_000;

/**
 * Parses the text of a Mosquitto password file. Blank lines and lines starting with `#` are
 * skipped; a line that is not `username:$6$…` or `username:$7$…` is listed in `problems` (by
 * number, without its content) and its user cannot log in. A user listed twice keeps the last
 * line, as Mosquitto does.
 */
export function parsePasswordFile(text: string): PasswordFile {
  const users = new Map<string, PasswordHash>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = colon > 0 ? line.slice(0, colon) : '';
    const hash = colon > 0 ? decodeHash(line.slice(colon + 1)) : undefined;
    if (!user || !hash) problems.push(`line ${i + 1}: not "username:$7$iterations$salt$hash" as mosquitto_passwd writes it`);
    else users.set(user, hash);
  });
  return { users, problems };
}

function decodeHash(text: string): PasswordHash | undefined {
  const parts = text.split('$');
  // ['', '7', iterations, salt, hash] or ['', '6', salt, hash]
  if (parts[0] !== '') return undefined;
  const b64 = (s: string | undefined) => (s && /^[A-Za-z0-9+/]+={0,2}$/.test(s) ? Buffer.from(s, 'base64') : undefined);
  if (parts[1] === '7' && parts.length === 5) {
    const iterations = Number(parts[2]);
    const salt = b64(parts[3]);
    const hash = b64(parts[4]);
    if (!/^\d+$/.test(parts[2] ?? '') || iterations < 1 || iterations > MAX_ITERATIONS || !salt || !hash || hash.length !== 64) return undefined;
    return { type: 'pbkdf2-sha512', iterations, salt, hash };
  }
  if (parts[1] === '6' && parts.length === 4) {
    const salt = b64(parts[2]);
    const hash = b64(parts[3]);
    if (!salt || !hash || hash.length !== 64) return undefined;
    return { type: 'sha512', salt, hash };
  }
  return undefined;
}

/**
 * Checks `password` against a stored hash in constant time (PBKDF2 runs on libuv's thread pool,
 * off the event loop).
 */
export async function verifyPassword(stored: PasswordHash, password: Buffer | string): Promise<boolean> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const computed =
    stored.type === 'pbkdf2-sha512'
      ? await pbkdf2Async(pw, stored.salt, stored.iterations, 64, 'sha512')
      : createHash('sha512').update(pw).update(stored.salt).digest();
  return computed.length === stored.hash.length && timingSafeEqual(computed, stored.hash);
}
