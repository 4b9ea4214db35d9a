// The files the settings name (secrets, keys, certificates), checked once at start: a path that
// cannot be read is a configuration error with the setting's name, before anything connects,
// rather than a failure after the migrations (the broker's password file) or a retry loop that
// has no earlier content to fall back on (the MQTT password and TLS files). Later re-reads keep
// the previous content when a rotation is half-written. BACKUP_INFO_FILE is not checked: the
// backup job writes it after the first backup.
import { accessSync, constants } from 'node:fs';
import type { Config } from './config.ts';

/** The settings that name a file, and their paths (unset ones left out). */
export function namedFiles(config: Config): [setting: string, path: string][] {
  const b = config.broker;
  const m = config.mqtt;
  const embedded = b.mode === 'embedded';
  const files: [string, string | undefined][] = [
    ['DATABASE_PASSWORD_FILE', config.databasePasswordFile],
    ['MQTT_PASSWORD_FILE', m.passwordFile],
    ['MQTT_CA_FILE', m.tls.caFile],
    ['MQTT_CERT_FILE', m.tls.certFile],
    ['MQTT_KEY_FILE', m.tls.keyFile],
    ['BROKER_PASSWORD_FILE', embedded ? b.passwordFile : undefined],
    ['BROKER_JWT_JWKS_FILE', embedded ? b.jwt?.jwksFile : undefined],
    ['BROKER_JWT_PUBLIC_KEY_FILE', embedded ? b.jwt?.pemFile : undefined],
    ['BROKER_TLS_CERT_FILE', embedded ? b.tls?.certFile : undefined],
    ['BROKER_TLS_KEY_FILE', embedded ? b.tls?.keyFile : undefined],
    ['BROKER_TLS_CA_FILE', embedded ? b.tls?.caFile : undefined],
  ];
  return files.filter((f): f is [string, string] => f[1] !== undefined);
}

/**
 * @returns one line per named file this process cannot read: the setting, the path and the
 *   errno code (`MQTT_CA_FILE: cannot read /run/ca.pem (ENOENT)`); empty when all can be read.
 */
export function unreadableFiles(config: Config): string[] {
  const problems: string[] = [];
  for (const [setting, path] of namedFiles(config)) {
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      problems.push(`${setting}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return problems;
}
