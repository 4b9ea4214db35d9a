// Classifies a database error by SQLSTATE: what the sink does with a failed batch. Pure.
// Model: Telegraf outputs/postgresql `isTempError`. Codes: PostgreSQL Appendix A.

/**
 * - `retry`: transient (connection lost, server shutting down, lock or statement timeout,
 *   deadlock, serialization failure, out of resources, a concurrent writer or recompression);
 *   same batch again after a backoff.
 * - `split`: the batch is too large for a server bound that the same batch would hit again
 *   (53400 configuration_limit_exceeded: TimescaleDB's
 *   `max_tuples_decompressed_per_dml_transaction`, PostgreSQL's `temp_file_limit`); the committer
 *   writes it in smaller parts, each in its own transaction.
 * - `reject_rows`: the data is at fault (class 22 data exception, class 23 integrity); split the
 *   batch to find the messages at fault and move them to `rejected_messages`.
 * - `operator`: needs a person (schema changed under us, permissions, missing database); the
 *   batch is kept and retried at the longest backoff, readiness goes 503.
 */
export type ErrorClass = 'retry' | 'split' | 'reject_rows' | 'operator';

const NODE_NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** @param err anything thrown by pg / pg-copy-streams / node:net. */
export function classifyDbError(err: unknown): ErrorClass {
  const code = codeOf(err);
  // Before the SQLSTATE test: EPIPE (socket closed under a COPY) is five letters too.
  if (NODE_NETWORK_CODES.has(code)) return 'retry';
  if (/^[0-9A-Z]{5}$/.test(code)) {
    const cls = code.slice(0, 2);
    // Unlike the rest of class 53 (disk full, out of memory, too many connections: they pass),
    // a configured limit fails the same statement every time: retrying it would loop forever.
    if (code === '53400') return 'split';
    if (cls === '08' || cls === '53' || cls === '58') return 'retry';
    if (code === '40001' || code === '40P01') return 'retry';
    if (code === '57P01' || code === '57P02' || code === '57P03' || code === '57014') return 'retry';
    if (code === '55P03' || code === '55006') return 'retry';
    if (cls === '22' || cls === '23') return 'reject_rows';
    if (code === '54000' || code === '54001') return 'reject_rows';
    return 'operator';
  }
  // pg raises plain Errors for a dropped socket ("Connection terminated unexpectedly"),
  // connect timeouts and query timeouts; all are transient.
  return 'retry';
}

/** A short, bounded label for metrics: the SQLSTATE class or `network`. */
export function errorLabel(err: unknown): string {
  return sqlstateOf(err) ?? 'network';
}

/**
 * A failure of the telemetry writer's transaction that is transient whatever `classifyDbError`
 * says of its SQLSTATE, so the writer marks it retryable (RetryableWriteError):
 * - 23505 on the (well_id, ts) key out of the staged path, which already skips stored keys and
 *   has `ON CONFLICT (well_id, ts) DO NOTHING`: a concurrent writer inserted the same key on a
 *   compressed chunk (timescaledb #5448). A 23505 on any other unique index stays the data's.
 * - 42704 "chunk not found": a chunk recompressed or dropped under the statement (timescaledb
 *   #5471, #3400); any other 42704 is a schema problem.
 */
export function isTransientWriteConflict(err: unknown): boolean {
  const code = codeOf(err);
  const constraint = typeof err === 'object' && err !== null && 'constraint' in err ? String((err as { constraint: unknown }).constraint) : '';
  if (code === '23505') return constraint.endsWith('esp_telemetry_well_ts_key') || /esp_telemetry_well_ts_key"/.test(messageOf(err));
  return code === '42704' && /^chunk not found/.test(messageOf(err));
}

/** The SQLSTATE of a server error (five characters), or null for anything else. */
export function sqlstateOf(err: unknown): string | null {
  const code = codeOf(err);
  return /^[0-9A-Z]{5}$/.test(code) && !NODE_NETWORK_CODES.has(code) ? code : null;
}

/** `err.code` as a string: a SQLSTATE, a Node network code, or ''. */
function codeOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

function messageOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'message' in err ? String((err as { message: unknown }).message) : '';
}
