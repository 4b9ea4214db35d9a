// URL settings (DATABASE_URL, MQTT_URL) checked with the WHATWG URL parser at start, so that a URL
// the clients cannot use fails the config check with an actionable message instead of failing
// later in a retry loop. Pure; messages never contain the URL or its password.

/** What a URL setting accepts. */
export interface UrlRules {
  /** Allowed schemes, without `:` (e.g. `postgres`). */
  readonly schemes: readonly string[];
  /**
   * Query parameter that may stand in for the host (`host=/var/run/postgresql` for a Unix socket,
   * as node-postgres reads it); without one, the host is required.
   */
  readonly hostParam?: string;
}

/** Characters that end the user info early when left unescaped, with their escapes. */
const RESERVED: Readonly<Record<string, string>> = { '#': '%23', '/': '%2F', '?': '%3F' };

/**
 * Every problem found in `text` as a URL under `rules`, each a sentence a person can act on.
 * @returns `[]` when the URL is usable. Messages may quote the scheme and the port, never the
 *   user info, host or path.
 */
export function urlProblems(text: string, rules: UrlRules): string[] {
  const names = rules.schemes.map((s) => `${s}://`);
  const allowed = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : (names[0] ?? '');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1];
  if (scheme === undefined) return [`must be a URL starting with ${allowed}`];
  if (!rules.schemes.includes(scheme.toLowerCase())) return [`scheme "${scheme}" is not allowed: use ${allowed}`];
  const url = parse(text, rules);
  if (!url) return diagnose(text.slice(scheme.length + 3));
  const problems: string[] = [];
  // Parses, but an unescaped # or / in the user info moved the password into the fragment or path.
  const misplacedAt = url.hash.includes('@') || url.pathname.includes('@') || [...url.searchParams.keys()].some((k) => k.includes('@'));
  if (misplacedAt) problems.push(`an "@" follows the host: ${escapeHint(reservedIn(userInfoCandidate(text.slice(scheme.length + 3))))}`);
  else if (url.hash !== '') problems.push('has a "#" fragment, which no client uses: if it belongs to the password, percent-encode it (# → %23)');
  const host = url.hostname === '___dummy___' ? '' : url.hostname;
  if (host === '' && !(rules.hostParam !== undefined && url.searchParams.has(rules.hostParam))) {
    problems.push(rules.hostParam !== undefined ? `has no host (give one, or ?${rules.hostParam}= for a Unix socket)` : 'has no host');
  }
  if (url.port !== '' && Number(url.port) === 0) problems.push('port 0 cannot be connected to: use 1-65535');
  for (const part of [url.username, url.password]) {
    if (!decodes(part)) {
      problems.push('a "%" in the user name or password must start an escape such as %23: write a literal % as %25');
      break;
    }
  }
  return problems;
}

/** The WHATWG parse, with node-postgres' stand-in host for `user@/db?host=…`; undefined when it fails. */
function parse(text: string, rules: UrlRules): URL | undefined {
  try {
    return new URL(text);
  } catch {
    if (rules.hostParam === undefined || !text.includes('@/')) return undefined;
    try {
      return new URL(text.replace('@/', '@___dummy___/'));
    } catch {
      return undefined;
    }
  }
}

/** Why `rest` (the URL after `scheme://`) does not parse, most likely cause first. */
function diagnose(rest: string): string[] {
  const reserved = reservedIn(userInfoCandidate(rest));
  if (reserved.length > 0) return [escapeHint(reserved)];
  const at = rest.lastIndexOf('@');
  const hostPort = rest.slice(at + 1).split(/[/?#]/)[0] ?? '';
  let host = hostPort;
  let port: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) return ['the IPv6 address has no closing "]" (write it as [::1])'];
    host = hostPort.slice(0, close + 1);
    if (hostPort.length > close + 1) {
      if (hostPort[close + 1] !== ':') return ['after the "]" of an IPv6 address only ":port" may follow'];
      port = hostPort.slice(close + 2);
    }
  } else {
    const colon = hostPort.lastIndexOf(':');
    if (colon >= 0) {
      host = hostPort.slice(0, colon);
      port = hostPort.slice(colon + 1);
    }
  }
  const problems: string[] = [];
  if (host === '') problems.push('has no host');
  else if (host.startsWith('[')) problems.push('the address in [ ] is not a valid IPv6 address');
  else if (/[\s<>^|"`{}\\%]/.test(host) || /[^\x21-\x7e]/.test(host)) problems.push('the host contains characters a host name cannot have');
  if (port !== undefined && port !== '') {
    if (!/^\d+$/.test(port)) problems.push('the port must be decimal digits (1-65535)');
    else if (Number(port) > 65_535 || Number(port) === 0) problems.push(`port ${Number(port)} is out of range: use 1-65535`);
  }
  return problems.length > 0
    ? problems
    : [
        'cannot be parsed as a URL: check it against scheme://user:password@host:port/path, with special characters in the user name and password percent-encoded',
      ];
}

/** The user info as written, if the text has one: everything before the last "@" (as parsers end it). */
function userInfoCandidate(rest: string): string {
  const at = rest.lastIndexOf('@');
  return at < 0 ? '' : rest.slice(0, at);
}

/** The reserved characters in `userInfo`, each once, in RESERVED order. */
function reservedIn(userInfo: string): string[] {
  return Object.keys(RESERVED).filter((c) => userInfo.includes(c));
}

function escapeHint(chars: readonly string[]): string {
  const list = (chars.length > 0 ? chars : Object.keys(RESERVED)).map((c) => `${c} → ${RESERVED[c]}`).join(', ');
  return `percent-encode special characters in the user name or password: ${list}`;
}

function decodes(part: string): boolean {
  try {
    decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}

/** `sslmode` values whose meaning is the same in libpq, pg 8 and (announced) pg 9. */
const SSLMODES_KEPT = ['disable', 'verify-ca', 'verify-full'];

/**
 * Why DATABASE_URL's `sslmode` is refused, or undefined. node-postgres 8 reads `prefer`,
 * `require` and `verify-ca` as verify-full unless `uselibpqcompat=true`, and warns that pg 9 will
 * give them libpq's weaker meaning (node-postgres #2375, PR #2709; pg-connection-string README).
 * Only values that mean the same under both are accepted: `disable`, `verify-full`, and
 * `verify-ca` with `sslrootcert`. The message never repeats the URL.
 */
export function sslmodeProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const mode = url.searchParams.get('sslmode');
  if (mode === null) return undefined;
  if (url.searchParams.has('uselibpqcompat')) return 'uselibpqcompat is not supported: use sslmode=verify-full (or verify-ca with sslrootcert, or disable)';
  if (!SSLMODES_KEPT.includes(mode)) {
    return `sslmode=${mode.slice(0, 20)} means different things in libpq, node-postgres 8 and node-postgres 9 (brianc/node-postgres#2375): use sslmode=verify-full (with sslrootcert=<CA file> for a private CA), verify-ca with sslrootcert, or disable`;
  }
  if (mode === 'verify-ca' && !url.searchParams.has('sslrootcert'))
    return 'sslmode=verify-ca needs sslrootcert=<CA file>: the certificate is checked against that CA';
  return undefined;
}
