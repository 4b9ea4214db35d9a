// What the ingress reads again before every CONNECT: the password (MQTT_PASSWORD_FILE, e.g. a
// token a sidecar refreshes) and the TLS files (MQTT_CA_FILE, MQTT_CERT_FILE, MQTT_KEY_FILE), so
// a rotated credential or certificate needs no restart (MQTT.js #916, #1947: a reconnect reuses
// `client.options`, which is therefore what gets updated). Also: how a refused CONNACK is named.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.ts';

/** Options that change between connects. */
export interface FreshConnectOptions {
  password?: Buffer;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The result of reading the files: the options, the client certificate's notAfter, and what could not be read. */
export interface ReadConnectFiles {
  readonly options: FreshConnectOptions;
  /** notAfter of MQTT_CERT_FILE, ms since the epoch; undefined without a certificate. */
  readonly certificateExpiresAtMs: number | undefined;
  /** e.g. `tls: cannot read MQTT_KEY_FILE (EACCES)`; the previous content is kept for it. */
  readonly problems: readonly string[];
}

/**
 * Reads MQTT_PASSWORD_FILE and the TLS files. A file that cannot be read keeps `previous`'s
 * value (a half-written rotation does not drop a working credential) and is listed in `problems`.
 */
export function readConnectFiles(c: Pick<Config['mqtt'], 'passwordFile' | 'tls'>, previous: FreshConnectOptions = {}): ReadConnectFiles {
  const options: FreshConnectOptions = { ...previous };
  const problems: string[] = [];
  const files: [keyof FreshConnectOptions, string | undefined, string, string][] = [
    ['password', c.passwordFile, 'MQTT_PASSWORD_FILE', 'credentials'],
    ['ca', c.tls.caFile, 'MQTT_CA_FILE', 'tls'],
    ['cert', c.tls.certFile, 'MQTT_CERT_FILE', 'tls'],
    ['key', c.tls.keyFile, 'MQTT_KEY_FILE', 'tls'],
  ];
  for (const [option, file, setting, kind] of files) {
    if (file === undefined) continue;
    try {
      const content = readFileSync(file);
      // A password file ends with a newline more often than not; the secret does not.
      options[option] = option === 'password' ? Buffer.from(content.toString('utf8').replace(/\r?\n$/, ''), 'utf8') : content;
    } catch (err) {
      problems.push(`${kind}: cannot read ${setting} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  let certificateExpiresAtMs: number | undefined;
  if (options.cert) {
    try {
      certificateExpiresAtMs = Date.parse(new X509Certificate(options.cert).validTo);
    } catch {
      problems.push('tls: MQTT_CERT_FILE holds no PEM certificate');
    }
  }
  return { options, certificateExpiresAtMs, problems };
}

/** A refused CONNACK's reason: the metric label and the words /readyz shows. */
export interface ConnackRefusal {
  readonly label: 'not_authorized' | 'bad_credentials' | 'other';
  readonly text: string;
}

/**
 * @param code CONNACK return code (MQTT 3.1.1 §3.2.2.3: 4 bad user name or password, 5 not
 *   authorized) or reason code (MQTT 5 §3.2.2.2: 0x86, 0x87, 0x8A banned, 0x8C bad
 *   authentication method…).
 */
export function connackRefusal(code: number, protocolVersion: 4 | 5): ConnackRefusal {
  const hex = `0x${code.toString(16).padStart(2, '0')}`;
  if (protocolVersion === 4) {
    if (code === 5) return { label: 'not_authorized', text: 'not authorized (CONNACK 5)' };
    if (code === 4) return { label: 'bad_credentials', text: 'bad user name or password (CONNACK 4)' };
    return { label: 'other', text: `refused (CONNACK ${code})` };
  }
  if (code === 0x87 || code === 0x8a) return { label: 'not_authorized', text: `not authorized (${hex})` };
  if (code === 0x86 || code === 0x8c) return { label: 'bad_credentials', text: `bad user name or password (${hex})` };
  return { label: 'other', text: `refused (${hex})` };
}
