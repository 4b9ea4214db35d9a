// The PGlite build behind the applier's narrow query surface (src/schema/apply.ts
// SqlClient): statements with parameters go through the extended protocol, those without through
// the simple one, so a migration file with several commands runs as it does on node-postgres.
import type { SqlClient } from '../../src/schema/apply.ts';
import type { LicensedDb } from './pglite.ts';

export function sqlClient(db: LicensedDb): SqlClient {
  return {
    async query(text: string, params?: unknown[]) {
      if (params && params.length > 0) return db.query(text, params);
      const results = await db.pglite.exec(text);
      return { rows: results.at(-1)?.rows ?? [] };
    },
  };
}
