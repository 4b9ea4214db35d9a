// The JWT settings of the embedded broker, apart from their verifier (jwt-auth.ts): the
// configuration reads them without loading `jose`, which only BROKER=embedded needs.

/** Algorithms a token may be signed with; anything else is refused before any key is used. */
export const JWT_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export interface JwtSettings {
  /** A JWKS document (`{"keys":[…]}`); keys are picked by `kid`/`alg`. Exactly one of this and pemFile. */
  readonly jwksFile: string | undefined;
  /** A PEM public key (SPKI). */
  readonly pemFile: string | undefined;
  readonly algorithms: readonly JwtAlgorithm[];
  /** Required `iss`, when set. */
  readonly issuer: string | undefined;
  /** Required `aud` (one of), when set. */
  readonly audience: string | undefined;
  /** Leeway for `nbf`, `iat` and `exp` against this machine's clock, s (field RTCs drift). */
  readonly clockToleranceS: number;
  /** Claim holding the well id (default `sub`). */
  readonly wellClaim: string;
  /** Claim holding the site, when the token has one (default `site`). */
  readonly siteClaim: string;
}
