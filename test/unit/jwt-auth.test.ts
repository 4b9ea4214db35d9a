// Unit tests for JWT verification on the embedded broker: the algorithm allow-list, issuer and
// audience, clock tolerance on nbf/iat (field RTCs drift: emqx/emqx PR #13602), expiry, and
// `alg: none` (auth0/node-jsonwebtoken #711) and HMAC-with-the-public-key forgeries (CVE-2022-23540).

import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJwtVerifier, type JwtSettings, type JwtVerifier, looksLikeJwt } from '../../src/broker/jwt-auth.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'esp-jwt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const NOW = Date.parse('2026-01-01T00:00:00Z');
const s = (n: number) => Math.floor(NOW / 1000) + n;
let es: CryptoKeyPair;
let pemVerifier: JwtVerifier;
let jwksVerifier: JwtVerifier;
let pem: string;
const base = (): JwtSettings => ({
  jwksFile: undefined,
  pemFile: undefined,
  algorithms: ['ES256', 'EdDSA', 'RS256'],
  issuer: 'esp-ca',
  audience: 'esp-ingest',
  clockToleranceS: 30,
  wellClaim: 'sub',
  siteClaim: 'site',
});

beforeAll(async () => {
  es = (await generateKeyPair('ES256', { extractable: true })) as CryptoKeyPair;
  pem = await exportSPKI(es.publicKey);
  writeFileSync(path.join(dir, 'key.pem'), pem);
  pemVerifier = await createJwtVerifier({ ...base(), pemFile: path.join(dir, 'key.pem') });
  const ed = (await generateKeyPair('EdDSA', { extractable: true })) as CryptoKeyPair;
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(ed.publicKey)), kid: 'k1', alg: 'EdDSA' }] }));
  jwksVerifier = await createJwtVerifier({ ...base(), jwksFile: path.join(dir, 'jwks.json') });
  (globalThis as { edKey?: CryptoKey }).edKey = ed.privateKey;
});

const token = (claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'ES256' }, key: CryptoKey = es.privateKey) =>
  new SignJWT({ iss: 'esp-ca', aud: 'esp-ingest', sub: 'W-1', iat: s(0), exp: s(600), ...claims }).setProtectedHeader(header as { alg: string }).sign(key);

describe('createJwtVerifier', () => {
  it('accepts a good ES256 token from a PEM key: well from sub, site from its claim, expiry with the tolerance', async () => {
    const id = await pemVerifier.verify(await token({ site: 'site-a' }), NOW);
    expect(id).toEqual({ wellId: 'W-1', site: 'site-a', expiresAtMs: (s(600) + 30) * 1000 });
  });

  it('accepts an EdDSA token picked from a JWKS file by kid', async () => {
    const t = await token({}, { alg: 'EdDSA', kid: 'k1' }, (globalThis as unknown as { edKey: CryptoKey }).edKey);
    expect((await jwksVerifier.verify(t, NOW)).wellId).toBe('W-1');
  });

  it.each([
    ['expired', { exp: s(-31) }, /expired/],
    ['not yet valid beyond the tolerance', { nbf: s(31) }, /nbf/],
    ['issued beyond the tolerance in the future', { iat: s(31) }, /iat|future/],
    ['wrong issuer', { iss: 'someone' }, /iss/],
    ['wrong audience', { aud: 'other' }, /aud/],
    ['no well claim', { sub: undefined }, /sub/],
    ['without exp (it would never expire, so never be revoked)', { exp: undefined }, /exp/],
    ['whose site claim is not a string (never read as "any site")', { site: ['a', 'b'] }, /site/],
    ['whose site claim is empty', { site: '' }, /site/],
  ])('refuses a token %s', async (_, claims, reason) => {
    await expect(pemVerifier.verify(await token(claims), NOW)).rejects.toThrow(reason);
  });

  it('accepts nbf/iat 20 s in the future (a device RTC running fast) within the 30 s tolerance', async () => {
    expect((await pemVerifier.verify(await token({ iat: s(20), nbf: s(20) }), NOW)).wellId).toBe('W-1');
  });

  it('refuses alg none with an empty signature', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'esp-ca', aud: 'esp-ingest', sub: 'W-2', exp: s(600) })}.`;
    expect(looksLikeJwt(forged)).toBe(true);
    await expect(pemVerifier.verify(forged, NOW)).rejects.toThrow(/algorithm not allowed|invalid/);
  });

  it('refuses an HS256 token signed with the public key as the HMAC secret', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'esp-ca', aud: 'esp-ingest', sub: 'W-2', exp: s(600) })}`;
    const forged = `${head}.${createHmac('sha256', pem).update(head).digest('base64url')}`;
    await expect(pemVerifier.verify(forged, NOW)).rejects.toThrow(/algorithm not allowed/);
  });

  it('refuses a token signed by another key', async () => {
    const other = (await generateKeyPair('ES256')) as CryptoKeyPair;
    await expect(pemVerifier.verify(await token({}, { alg: 'ES256' }, other.privateKey), NOW)).rejects.toThrow(/signature/);
  });
});
