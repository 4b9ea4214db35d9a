// Test identities: a Mosquitto password file written by the real mosquitto_passwd, an ES256 key
// pair for device tokens, and MQTT clients acting as devices (or intruders).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import mqtt from 'mqtt';
import type { Teardown } from './harness.ts';

/** The service's own user on the test brokers. */
export const INGEST_USER = 'esp-ingest';
export const INGEST_PASSWORD = 'ingest-S3cr3t-pw%23x';

/** Device credentials: user name = well id, password `pw-<well>`. */
export const devicePassword = (wellId: string) => `pw-${wellId}`;

export interface Identities {
  readonly dir: string;
  readonly passwordFile: string;
  readonly publicKeyFile: string;
  /** Adds (or replaces) a user with mosquitto_passwd. */
  addUser(user: string, password: string): void;
  removeUser(user: string): void;
  /** An ES256 token with iss `esp-test`, aud `esp-ingest`; `claims` override (exp in s since the epoch). */
  token(claims: Record<string, unknown>): Promise<string>;
}

export async function identities(t: Teardown, wells: readonly string[]): Promise<Identities> {
  const dir = mkdtempSync(path.join(tmpdir(), 'esp-ids-'));
  t.add(() => rmSync(dir, { recursive: true, force: true }));
  // Mosquitto drops root before reading the file: it must be readable by user mosquitto.
  chmodSync(dir, 0o755);
  const passwordFile = path.join(dir, 'passwd');
  const passwd = (args: string[]) => {
    execFileSync('mosquitto_passwd', args);
    chmodSync(passwordFile, 0o644);
  };
  passwd(['-c', '-b', passwordFile, INGEST_USER, INGEST_PASSWORD]);
  const addUser = (user: string, password: string) => passwd(['-b', passwordFile, user, password]);
  for (const w of wells) addUser(w, devicePassword(w));
  const keys = (await generateKeyPair('ES256', { extractable: true })) as CryptoKeyPair;
  const publicKeyFile = path.join(dir, 'jwt.pem');
  writeFileSync(publicKeyFile, await exportSPKI(keys.publicKey));
  return {
    dir,
    passwordFile,
    publicKeyFile,
    addUser,
    removeUser: (user) => passwd(['-D', passwordFile, user]),
    token: (claims) =>
      new SignJWT({ iss: 'esp-test', aud: 'esp-ingest', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, ...claims })
        .setProtectedHeader({ alg: 'ES256' })
        .sign(keys.privateKey),
  };
}

/** Environment turning on both authentication methods of the embedded broker. */
export function embeddedAuthEnv(ids: Identities): Record<string, string> {
  return {
    BROKER: 'embedded',
    BROKER_PORT: '0',
    BROKER_PASSWORD_FILE: ids.passwordFile,
    BROKER_JWT_PUBLIC_KEY_FILE: ids.publicKeyFile,
    BROKER_JWT_ISSUER: 'esp-test',
    BROKER_JWT_AUDIENCE: 'esp-ingest',
    MQTT_USERNAME: INGEST_USER,
    MQTT_PASSWORD: INGEST_PASSWORD,
  };
}

/**
 * Connects a device; resolves with the client, or rejects with the CONNACK refusal. No reconnects.
 * Ended at teardown.
 */
export async function device(
  t: Teardown,
  url: string,
  o: { username?: string; password?: string; clientId?: string; protocolVersion?: 4 | 5; clean?: boolean; ca?: Buffer },
): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, {
    clientId: o.clientId ?? `dev-${Math.random().toString(36).slice(2, 10)}`,
    protocolVersion: o.protocolVersion ?? 4,
    clean: o.clean ?? true,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.ca ? { ca: o.ca } : {}),
  });
  t.add(() => c.endAsync(true));
  return c;
}

/** A reading at `tsMs` (device time), JSON. */
export const reading = (tsMs: number, vsdHz = 50) => JSON.stringify({ ts: new Date(tsMs).toISOString(), vsd_frequency_hz: vsdHz });

export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The QoS the broker granted to one filter (128 when refused), whether MQTT.js resolves or rejects the SUBACK. */
export async function grantedQos(client: mqtt.MqttClient, filter: string): Promise<number> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0]?.qos ?? -1;
  } catch (err) {
    const granted = (err as { packet?: { granted?: (number | { qos: number })[] } }).packet?.granted?.[0];
    if (granted === undefined) throw err;
    return typeof granted === 'number' ? granted : granted.qos;
  }
}
