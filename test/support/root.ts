// The repository's root directory, for tests and dev tools that read its files or run its
// scripts (mosquitto.conf, sql/, scripts/timescaledb.sh, src/main.ts).
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
