// Operator tool: issues a device credential for a well (`npm run credential -- --help`).
//   password: a random password, added to a Mosquitto password file with mosquitto_passwd (the
//             same file serves Mosquitto and the embedded broker); printed once on stdout.
//   token:    a JWT signed with a private key (PKCS#8 PEM), `sub` = the well id, for the embedded
//             broker's JWT authentication; printed on stdout.
// Revoke a password with `mosquitto_passwd -D <file> <well>`; a token expires (--ttl-s).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { importPKCS8, SignJWT } from 'jose';
import { JWT_ALGORITHMS, type JwtAlgorithm } from '../broker/jwt-auth.ts';
import { idProblem } from '../decode/topic.ts';
import { parseCliOrExit } from './cli.ts';

/**
 * Adds `user` (a well id, or the service's user) to `passwordFile` with a new random password
 * (24 bytes, base64url), replacing an existing line; creates the file when missing, readable by
 * its owner only (0600). The password reaches mosquitto_passwd on its standard input, never on
 * its command line (which any local user could read in `ps`).
 * @returns the password (shown once: only its PBKDF2 hash is stored).
 * @throws Error (without the password) when mosquitto_passwd is not installed or fails.
 */
export function issuePassword(passwordFile: string, user: string, exists = true): string {
  const password = randomBytes(24).toString('base64url');
  try {
    // mosquitto_passwd asks twice ("Password:", "Reenter password:") and reads stdin when it is not a terminal.
    execFileSync('mosquitto_passwd', [...(exists ? [] : ['-c']), passwordFile, user], {
      input: `${password}\n${password}\n`,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(
      `mosquitto_passwd could not add ${JSON.stringify(user)} to ${passwordFile}${stderr ? `: ${stderr}` : ` (${(err as NodeJS.ErrnoException).code ?? 'failed'})`}`,
    );
  }
  if (!exists) chmodSync(passwordFile, 0o600);
  return password;
}

export interface TokenOptions {
  /** PKCS#8 PEM private key. */
  readonly privateKeyPem: string;
  readonly alg: JwtAlgorithm;
  readonly wellId: string;
  readonly site?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Lifetime, s. */
  readonly ttlS: number;
  /** ms since the epoch. */
  readonly nowMs?: number;
}

/** A signed JWT for a well: `sub` = well id, `iat`, `exp` = iat + ttl, optional `site`, `iss`, `aud`. */
export async function issueToken(o: TokenOptions): Promise<string> {
  const iat = Math.floor((o.nowMs ?? Date.now()) / 1000);
  const jwt = new SignJWT({ ...(o.site ? { site: o.site } : {}) })
    .setProtectedHeader({ alg: o.alg })
    .setSubject(o.wellId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + o.ttlS);
  if (o.issuer) jwt.setIssuer(o.issuer);
  if (o.audience) jwt.setAudience(o.audience);
  return jwt.sign(await importPKCS8(o.privateKeyPem, o.alg));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, numbers } = parseCliOrExit(process.argv.slice(2), {
    name: 'credential',
    usage: `usage: npm run credential -- --well ID (--password-file FILE | --token --key FILE) [options]
  --well ID             the well the credential speaks for (the MQTT user name / the token's sub)
  --password-file FILE  add the well to this Mosquitto password file with a new random password
                        (created if missing); the password is printed once
  --token               issue a JWT instead, signed with --key
  --key FILE            PKCS#8 PEM private key for --token
  --alg ALG             ES256 (default), EdDSA or RS256: must match the key and BROKER_JWT_ALGORITHMS
  --site NAME           a site claim: the device may then publish only under that site
  --issuer ISS          the iss claim (BROKER_JWT_ISSUER)
  --audience AUD        the aud claim (BROKER_JWT_AUDIENCE)
  --ttl-s N             lifetime in seconds (default 86400)`,
    options: {
      well: { type: 'string' },
      'password-file': { type: 'string' },
      token: { type: 'boolean', default: false },
      key: { type: 'string' },
      alg: { type: 'string', default: 'ES256' },
      site: { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      'ttl-s': { type: 'string', default: '86400' },
    },
    // At most a year: a token cannot be revoked before it expires.
    numbers: { 'ttl-s': { min: 1, max: 31_536_000, integer: true } },
    choices: { alg: JWT_ALGORITHMS },
  });
  const fail = (line: string) => {
    process.stderr.write(`credential: ${line}\n`);
    process.exit(2);
  };
  if (!values.well) fail('--well is required');
  const well = values.well!;
  // The well id must be one the service accepts (WELL_ID_CHARS), or the credential could never be used.
  const problem = idProblem(well, process.env.WELL_ID_CHARS || undefined);
  if (problem) fail(`--well ${JSON.stringify(well)} ${problem}`);
  if (values.token) {
    if (!values.key) fail('--token needs --key (a PKCS#8 PEM private key)');
    let privateKeyPem = '';
    try {
      privateKeyPem = readFileSync(values.key!, 'utf8');
    } catch (err) {
      fail(`cannot read --key ${values.key} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    process.stdout.write(
      `${await issueToken({ privateKeyPem, alg: values.alg as JwtAlgorithm, wellId: well, ttlS: numbers['ttl-s'], ...(values.site ? { site: values.site } : {}), ...(values.issuer ? { issuer: values.issuer } : {}), ...(values.audience ? { audience: values.audience } : {}) })}\n`,
    );
  } else {
    if (!values['password-file']) fail('give --password-file FILE, or --token --key FILE');
    const file = values['password-file']!;
    let exists = true;
    try {
      readFileSync(file);
    } catch {
      exists = false;
    }
    try {
      process.stdout.write(`${issuePassword(file, well, exists)}\n`);
    } catch (err) {
      process.stderr.write(`credential: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
}
