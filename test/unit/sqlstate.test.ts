// Unit tests for classifying database errors by SQLSTATE (PostgreSQL Appendix A; TimescaleDB's
// own uses of 53400 and 42704).
import { describe, expect, it } from 'vitest';
import { classifyDbError, errorLabel, isTransientWriteConflict } from '../../src/sink/sqlstate.ts';
import { pgError } from '../support/fixtures.ts';

describe('classifyDbError', () => {
  it.each([
    ['08006', 'connection_failure', 'retry'],
    ['08001', 'sqlclient_unable_to_establish_sqlconnection', 'retry'],
    ['08003', 'connection_does_not_exist', 'retry'],
    ['40001', 'serialization_failure', 'retry'],
    ['40P01', 'deadlock_detected', 'retry'],
    ['53000', 'insufficient_resources', 'retry'],
    ['53100', 'disk_full', 'retry'],
    ['53200', 'out_of_memory', 'retry'],
    ['53300', 'too_many_connections', 'retry'],
    ['53400', 'configuration_limit_exceeded (TimescaleDB decompression limit, temp_file_limit)', 'split'],
    ['57P01', 'admin_shutdown', 'retry'],
    ['57P02', 'crash_shutdown', 'retry'],
    ['57P03', 'cannot_connect_now', 'retry'],
    ['57014', 'query_canceled (statement_timeout)', 'retry'],
    ['55P03', 'lock_not_available (lock_timeout)', 'retry'],
    ['55006', 'object_in_use', 'retry'],
    ['58030', 'io_error', 'retry'],
    ['22P02', 'invalid_text_representation', 'reject_rows'],
    ['22003', 'numeric_value_out_of_range', 'reject_rows'],
    ['22021', 'character_not_in_repertoire', 'reject_rows'],
    ['22P05', 'untranslatable_character', 'reject_rows'],
    ['22007', 'invalid_datetime_format', 'reject_rows'],
    ['23505', 'unique_violation (the writer turns a concurrent writer of our key into a retry: isTransientWriteConflict)', 'reject_rows'],
    ['23502', 'not_null_violation', 'reject_rows'],
    ['23514', 'check_violation', 'reject_rows'],
    ['23503', 'foreign_key_violation', 'reject_rows'],
    ['54000', 'program_limit_exceeded', 'reject_rows'],
    ['42P01', 'undefined_table', 'operator'],
    ['42704', 'undefined_object', 'operator'],
    ['42703', 'undefined_column', 'operator'],
    ['42501', 'insufficient_privilege', 'operator'],
    ['28P01', 'invalid_password', 'operator'],
    ['28000', 'invalid_authorization_specification', 'operator'],
    ['3D000', 'invalid_catalog_name', 'operator'],
    ['0A000', 'feature_not_supported', 'operator'],
    ['XX000', 'internal_error', 'operator'],
  ])('%s (%s) → %s', (code, _name, cls) => {
    expect(classifyDbError(pgError(code))).toBe(cls);
  });

  it('42704 is a schema problem here, "chunk not found" included (the writer marks that one retryable)', () => {
    expect(classifyDbError(Object.assign(new Error('chunk not found'), { code: '42704', detail: 'id: 2' }))).toBe('operator');
  });
});

describe("isTransientWriteConflict (the writer's own retryable failures)", () => {
  it.each([
    ['23505 on the (well_id, ts) key of a chunk (timescaledb #5448)', { code: '23505', constraint: '1_1_esp_telemetry_well_ts_key' }, true],
    [
      '23505 on the hypertable key, named only in the message',
      { code: '23505', message: 'duplicate key value violates unique constraint "esp_telemetry_well_ts_key"' },
      true,
    ],
    ['23505 on another unique index (the data is at fault)', { code: '23505', constraint: 'esp_telemetry_seq_key' }, false],
    ['42704 "chunk not found" (timescaledb #5471, #3400)', { code: '42704', message: 'chunk not found' }, true],
    ['42704 for anything else', { code: '42704', message: 'type "x" does not exist' }, false],
    ['40P01', { code: '40P01', message: 'deadlock detected' }, false],
  ] as [string, { code: string; constraint?: string; message?: string }, boolean][])('%s → %s', (_what, fields, expected) => {
    expect(isTransientWriteConflict(Object.assign(new Error(fields.message ?? 'x'), fields))).toBe(expected);
  });

  it.each([['ECONNREFUSED'], ['ECONNRESET'], ['ETIMEDOUT'], ['EPIPE'], ['EHOSTUNREACH'], ['ENOTFOUND'], ['EAI_AGAIN']])(
    'node network error %s → retry',
    (code) => {
      expect(classifyDbError(pgError(code))).toBe('retry');
    },
  );

  it.each([
    ['an Error without code (pg "Connection terminated unexpectedly")', new Error('Connection terminated unexpectedly')],
    ['a string', 'boom'],
    ['undefined', undefined],
    ['null', null],
    ['an object with a non-string code', { code: 42 }],
  ])('%s → retry', (_what, err) => {
    expect(classifyDbError(err)).toBe('retry');
  });
});

describe('errorLabel', () => {
  it.each([
    [pgError('40001'), '40001'],
    [pgError('23505'), '23505'],
    [pgError('ECONNRESET'), 'network'],
    [pgError('EPIPE'), 'network'],
    [new Error('no code'), 'network'],
    [undefined, 'network'],
  ])('%s → %s', (err, label) => {
    expect(errorLabel(err)).toBe(label);
  });
});
