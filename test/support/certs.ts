// A private CA with a server certificate for 127.0.0.1/localhost and client certificates, made
// with the openssl CLI into a directory (files readable by the mosquitto user).
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCa {
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** A client certificate with CN `cn`, valid `days` days: its cert and key files. */
  client(cn: string, days?: number): { certFile: string; keyFile: string };
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

export function testCa(dir: string, name = 'ca'): TestCa {
  chmodSync(dir, 0o755);
  const f = (n: string) => path.join(dir, n);
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f(`${name}.key`),
    '-out',
    f(`${name}.crt`),
    '-days',
    '30',
    '-subj',
    `/CN=esp-test-${name}`,
  ]);
  const sign = (base: string, cn: string, days: number, ext?: string) => {
    openssl(dir, [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f(`${base}.key`),
      '-out',
      f(`${base}.csr`),
      '-subj',
      `/CN=${cn}`,
    ]);
    const extArgs: string[] = [];
    if (ext) {
      writeFileSync(f(`${base}.ext`), ext);
      extArgs.push('-extfile', f(`${base}.ext`));
    }
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      f(`${base}.csr`),
      '-CA',
      f(`${name}.crt`),
      '-CAkey',
      f(`${name}.key`),
      '-CAcreateserial',
      '-out',
      f(`${base}.crt`),
      '-days',
      String(days),
      ...extArgs,
    ]);
    for (const e of ['key', 'crt']) chmodSync(f(`${base}.${e}`), 0o644);
    return { certFile: f(`${base}.crt`), keyFile: f(`${base}.key`) };
  };
  const server = sign(`${name}-server`, 'localhost', 30, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  chmodSync(f(`${name}.crt`), 0o644);
  return {
    caFile: f(`${name}.crt`),
    serverCertFile: server.certFile,
    serverKeyFile: server.keyFile,
    client: (cn, days = 30) => sign(`${name}-client-${cn}`, cn, days),
  };
}
