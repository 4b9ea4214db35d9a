// JWT as the MQTT password on the embedded broker: a device presents a signed token naming its
// well. Verified with `jose` against keys from a JWKS file or a PEM public key, with an explicit
// algorithm allow-list: never `none` (auth0/node-jsonwebtoken #711), never an HMAC key made from
// a public key (CVE-2022-23540), since only asymmetric algorithms are accepted.
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, errors, importSPKI, type JWTPayload, type JWTVerifyGetKey, jwtVerify, type KeyObject } from 'jose';
import type { JwtSettings } from './jwt-settings.ts';

export { JWT_ALGORITHMS, type JwtAlgorithm, type JwtSettings } from './jwt-settings.ts';

/** A verified token. */
export interface JwtIdentity {
  readonly wellId: string;
  readonly site: string | null;
  /** When the token stops being valid (`exp` + tolerance), ms since the epoch; undefined without `exp`. */
  readonly expiresAtMs: number | undefined;
}

/** Why a token was refused; the text never includes the token. */
export class JwtRefused extends Error {}

/** True when `password` has a JWT's shape (three base64url segments, JSON header), so it is meant as a token. */
export function looksLikeJwt(password: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(password) && password.startsWith('eyJ');
}

export interface JwtVerifier {
  /**
   * @param nowMs this machine's clock, ms.
   * @throws JwtRefused saying why (expired, not yet valid, bad signature, algorithm not allowed…).
   */
  verify(token: string, nowMs: number): Promise<JwtIdentity>;
}

/**
 * Reads the key file(s) once.
 * @throws Error naming the setting when a file cannot be read or holds no usable key.
 */
export async function createJwtVerifier(s: JwtSettings): Promise<JwtVerifier> {
  let key: JWTVerifyGetKey | KeyObject | CryptoKey;
  if (s.jwksFile) {
    key = createLocalJWKSet(JSON.parse(await readFile(s.jwksFile, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
  } else if (s.pemFile) {
    const pem = await readFile(s.pemFile, 'utf8');
    // importSPKI needs the algorithm; the first allowed one that fits the key type.
    let imported: CryptoKey | KeyObject | undefined;
    for (const alg of s.algorithms) {
      imported = await importSPKI(pem, alg).catch(() => undefined);
      if (imported) break;
    }
    if (!imported) throw new Error(`BROKER_JWT_PUBLIC_KEY_FILE: no public key for ${s.algorithms.join('/')} in the PEM file`);
    key = imported;
  } else {
    throw new Error('JWT authentication needs BROKER_JWT_JWKS_FILE or BROKER_JWT_PUBLIC_KEY_FILE');
  }
  return {
    async verify(token, nowMs) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
          algorithms: [...s.algorithms],
          clockTolerance: s.clockToleranceS,
          currentDate: new Date(nowMs),
          // A token without `exp` would never expire, so it could never be revoked.
          requiredClaims: ['exp'],
          ...(s.issuer !== undefined ? { issuer: s.issuer } : {}),
          ...(s.audience !== undefined ? { audience: s.audience } : {}),
        }));
      } catch (err) {
        throw new JwtRefused(refusalText(err));
      }
      // jose checks `nbf` and `exp` but not an `iat` in the future: refuse one beyond the tolerance.
      if (typeof payload.iat === 'number' && payload.iat * 1000 > nowMs + s.clockToleranceS * 1000)
        throw new JwtRefused('token issued in the future (iat beyond the clock tolerance)');
      const wellId = payload[s.wellClaim];
      if (typeof wellId !== 'string' || wellId === '') throw new JwtRefused(`token has no "${s.wellClaim}" claim naming the well`);
      // An absent site claim means "any site"; one present but not a non-empty string is refused,
      // never read as "any site" (that would fail open).
      const site = payload[s.siteClaim];
      if (site !== undefined && (typeof site !== 'string' || site === '')) throw new JwtRefused(`claim "${s.siteClaim}" must be a non-empty string`);
      return {
        wellId,
        site: site ?? null,
        expiresAtMs: typeof payload.exp === 'number' ? (payload.exp + s.clockToleranceS) * 1000 : undefined,
      };
    },
  };
}

/** A short reason from jose's error classes (their messages never quote the token). */
function refusalText(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `claim "${err.claim}" invalid: ${err.reason}`;
  if (err instanceof errors.JOSEAlgNotAllowed) return 'signing algorithm not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature does not verify';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key matches the token (kid/alg)';
  if (err instanceof errors.JOSEError) return `token invalid (${err.code})`;
  return 'token invalid';
}
