// Unit tests for classifying database errors by SQLSTATE (PostgreSQL Appendix A; TimescaleDB's
// own uses of 53400 and 42704).
import { describe, expect, it } from 'vitest';
import { classifyDbError, errorLabel } from '../../src/sink/sqlstate.ts';

const pgError = (code: string) => Object.assign(new Error(`pg error ${code}`), { code });

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
    ['23505', 'unique_violation (a concurrent writer of the same key; timescaledb #5448)', 'retry'],
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

  it('42704 "chunk not found" (TimescaleDB, a chunk recompressed or dropped under the statement: #5471, #3400) → retry', () => {
    expect(classifyDbError(Object.assign(new Error('chunk not found'), { code: '42704', detail: 'id: 2' }))).toBe('retry');
    expect(classifyDbError(Object.assign(new Error('type "x" does not exist'), { code: '42704' }))).toBe('operator');
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
