// The node-postgres Client class the service connects with. With DATABASE_PASSWORD_FILE, the
// password is read from that file for every new connection (a rotated secret needs no restart)
// and wins over one in DATABASE_URL: pg lets a URL's password (even an empty one) override a
// `password` option, so it is set on the client after construction, where pg reads it at
// authentication time (and keeps it non-enumerable, out of `util.inspect`).
import { readFile } from 'node:fs/promises';
import pg from 'pg';

/** pg.Client, or a subclass reading the password from `passwordFile` at each connect. */
export function pgClientClass(passwordFile: string | undefined): typeof pg.Client {
  if (passwordFile === undefined) return pg.Client;
  const file = passwordFile;
  return class FilePasswordClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      (this as unknown as { password: () => Promise<string> }).password = async () => (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
    }
  };
}
