// Authentication on the embedded broker: who a CONNECT is. Two methods, both optional, both may
// be on: Mosquitto's password file (user name = well id, or the service's user name) and a JWT
// as the password (the well id from a claim). The service's client id is reserved for the
// service's identity, so no other client can take over its persistent session.

import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Identity } from './authorize.ts';
import { JwtRefused, type JwtVerifier, looksLikeJwt } from './jwt-auth.ts';
import { type PasswordFile, parsePasswordFile, verifyPassword } from './password-file.ts';

/** Why a CONNECT is refused (3.1.1 CONNACK 4 for bad_credentials, 5 otherwise). Bounded: a label. */
export type ConnectRefusal = 'bad_credentials' | 'token_invalid' | 'token_expired' | 'client_id_reserved' | 'hook_error';

export type AuthResult =
  | { readonly ok: true; readonly identity: Identity; readonly expiresAtMs: number | undefined }
  | { readonly ok: false; readonly reason: ConnectRefusal; readonly detail: string };

export interface Authenticator {
  /**
   * @param password the CONNECT password bytes (UTF-8 for a token).
   * @param nowMs ms since the epoch.
   */
  authenticate(clientId: string, username: string | undefined, password: Buffer | undefined, nowMs: number): Promise<AuthResult>;
  /** Stops watching the password file. Idempotent. */
  close(): void;
}

export interface AuthenticatorOptions {
  /** Path of a Mosquitto password file; undefined: no password-file logins. */
  readonly passwordFile: string | undefined;
  readonly jwt: JwtVerifier | undefined;
  /** User name (or token well claim) of the service's own ingest client. */
  readonly serviceUsername: string;
  /** MQTT_CLIENT_ID: only the service identity may connect with it. */
  readonly serviceClientId: string;
  /** Told after each (re)load of the password file: users loaded, or why the last good set was kept. */
  readonly onPasswordFileLoad?: (result: { readonly users: number; readonly problems: readonly string[] } | { readonly error: string }) => void;
  /** How often the password file's mtime is checked, ms (also reloaded on SIGHUP). */
  readonly watchIntervalMs?: number;
}

/**
 * Loads the password file (when configured) and starts watching it: a changed file or SIGHUP
 * reloads it. An unreadable file on reload keeps the last good set (logged), so a bad edit
 * neither opens the broker nor locks everyone out; a device is revoked by removing its line.
 * @throws Error when the password file cannot be read at start.
 */
export async function createAuthenticator(o: AuthenticatorOptions): Promise<Authenticator> {
  let users: PasswordFile['users'] = new Map();
  const load = async (atStart: boolean) => {
    if (!o.passwordFile) return;
    try {
      const parsed = parsePasswordFile(await readFile(o.passwordFile, 'utf8'));
      users = parsed.users;
      o.onPasswordFileLoad?.({ users: parsed.users.size, problems: parsed.problems });
    } catch (err) {
      if (atStart) throw new Error(`BROKER_PASSWORD_FILE: cannot read the password file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      o.onPasswordFileLoad?.({ error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
    }
  };
  await load(true);
  const reload = () => void load(false);
  if (o.passwordFile) {
    watchFile(o.passwordFile, { interval: o.watchIntervalMs ?? 1_000, persistent: false }, reload);
    process.on('SIGHUP', reload);
  }
  const identityFor = (name: string, site: string | null): Identity =>
    name === o.serviceUsername ? { kind: 'service', name } : { kind: 'device', wellId: name, site };
  /**
   * Client id → the identity that first used it (well id, or the service's name). A client id,
   * and the persistent session under it, belongs to one identity: another device connecting with
   * it would otherwise disconnect the owner and take its session [MQTT-3.1.4-2]. Kept for the
   * broker's life, as aedes keeps sessions; bounded by the number of client ids devices use.
   */
  const owners = new Map<string, string>();

  return {
    async authenticate(clientId, username, password, nowMs) {
      const secret = password ?? Buffer.alloc(0);
      const text = secret.toString('utf8');
      let result: AuthResult;
      if (o.jwt && looksLikeJwt(text)) {
        try {
          const token = await o.jwt.verify(text, nowMs);
          result = { ok: true, identity: identityFor(token.wellId, token.site), expiresAtMs: token.expiresAtMs };
        } catch (err) {
          if (!(err instanceof JwtRefused)) throw err;
          result = { ok: false, reason: err.message === 'token expired' ? 'token_expired' : 'token_invalid', detail: err.message };
        }
      } else {
        const stored = username !== undefined ? users.get(username) : undefined;
        // Without a stored hash a dummy check keeps the time of an unknown user like a known one's.
        let ok = false;
        if (stored) ok = await verifyPassword(stored, secret);
        else await verifyPassword(DUMMY, secret);
        result =
          ok && username !== undefined
            ? { ok: true, identity: identityFor(username, null), expiresAtMs: undefined }
            : { ok: false, reason: 'bad_credentials', detail: 'unknown user name or wrong password' };
      }
      if (result.ok && clientId === o.serviceClientId && result.identity.kind !== 'service') {
        return { ok: false, reason: 'client_id_reserved', detail: `client id "${clientId}" belongs to the service` };
      }
      if (result.ok) {
        const who = result.identity.kind === 'service' ? result.identity.name : result.identity.kind === 'device' ? result.identity.wellId : undefined;
        const owner = owners.get(clientId);
        if (who !== undefined && owner !== undefined && owner !== who) {
          return { ok: false, reason: 'client_id_reserved', detail: `client id "${clientId}" belongs to another identity` };
        }
        if (who !== undefined) owners.set(clientId, who);
      }
      return result;
    },
    close() {
      if (!o.passwordFile) return;
      unwatchFile(o.passwordFile, reload);
      process.off('SIGHUP', reload);
    },
  };
}

const DUMMY = parsePasswordFile(`x:$7$101$AAAAAAAAAAAAAAAA$${Buffer.alloc(64).toString('base64')}`).users.get('x')!;
