// Unit tests for the MQTT topic template: subscription filter and well id / site extraction.
import { describe, expect, it } from 'vitest';
import { EspError } from '../../src/errors.ts';
import { idProblem, parseTopicTemplate } from '../../src/decode/topic.ts';

const DEFAULT = 'esp/{site}/{well_id}/telemetry';

describe('parseTopicTemplate: filter', () => {
  it.each([
    [DEFAULT, 'esp/+/+/telemetry'],
    ['esp/{well_id}/telemetry', 'esp/+/telemetry'],
    ['{well_id}', '+'],
    ['plant/{well_id}/{site}', 'plant/+/+'],
    ['a/b/c/{well_id}/d', 'a/b/c/+/d'],
    ['/esp/{well_id}', '/esp/+'],
    ['esp//{well_id}', 'esp//+'],
    ['$share-free/{well_id}', '$share-free/+'],
  ])('%s subscribes to %s', (template, filter) => {
    expect(parseTopicTemplate(template).filter).toBe(filter);
  });
});

describe('parseTopicTemplate: match', () => {
  const t = parseTopicTemplate(DEFAULT);

  it.each([
    ['esp/north/W-17/telemetry', { wellId: 'W-17', site: 'north' }],
    ['esp/north sea/well 17/telemetry', { wellId: 'well 17', site: 'north sea' }],
    ['esp/sítio/poço-ü/telemetry', { wellId: 'poço-ü', site: 'sítio' }],
  ])('%s → %j', (topic, where) => {
    expect(t.match(topic)).toEqual(where);
  });

  it.each([
    ['a wrong first literal', 'xsp/north/W-17/telemetry'],
    ['a wrong last literal', 'esp/north/W-17/status'],
    ['literal case differs', 'ESP/north/W-17/telemetry'],
    ['one level too few', 'esp/north/telemetry'],
    ['one level too many', 'esp/north/W-17/telemetry/extra'],
    ['a trailing slash', 'esp/north/W-17/telemetry/'],
    ['a leading slash', '/esp/north/W-17/telemetry'],
    ['an empty topic', ''],
  ])('does not match %s', (_what, topic) => {
    expect(t.match(topic)).toBeUndefined();
  });

  it('gives an empty well level as well id "" (to-work rejects it as invalid_well_id)', () => {
    expect(t.match('esp/north//telemetry')).toEqual({ wellId: '', site: 'north' });
  });

  it('gives an empty site level as site "" (not null); to-work rejects it as invalid_well_id', () => {
    expect(t.match('esp//W-17/telemetry')).toEqual({ wellId: 'W-17', site: '' });
  });

  it('gives site null when the template has no {site}', () => {
    expect(parseTopicTemplate('esp/{well_id}/telemetry').match('esp/W-1/telemetry')).toEqual({ wellId: 'W-1', site: null });
  });

  it('finds well and site wherever they sit', () => {
    expect(parseTopicTemplate('{well_id}/x/{site}').match('W-9/x/south')).toEqual({ wellId: 'W-9', site: 'south' });
  });
});

describe('parseTopicTemplate: invalid templates', () => {
  it.each([
    ['no {well_id}', 'esp/{site}/telemetry', /\{well_id\}/],
    ['an empty template', '', /\{well_id\}/],
    ['{well_id} twice', 'esp/{well_id}/{well_id}', /twice/],
    ['{site} twice', '{site}/{site}/{well_id}', /twice/],
    ['+ as a literal level', 'esp/+/{well_id}', /level 2/],
    ['# as a literal level', 'esp/{well_id}/#', /level 3/],
    ['+ inside a literal level', 'esp/a+b/{well_id}', /level 2/],
    ['a placeholder inside a level', 'esp/well-{well_id}', /level 2/],
    ['an unknown placeholder', 'esp/{region}/{well_id}', /level 2/],
    ['a stray brace', 'esp}/{well_id}', /level 1/],
  ])('throws ESP_TOPIC_TEMPLATE_INVALID for %s', (_what, template, message) => {
    let caught: unknown;
    try {
      parseTopicTemplate(template);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EspError);
    expect((caught as EspError).code).toBe('ESP_TOPIC_TEMPLATE_INVALID');
    expect((caught as EspError).message).toMatch(message);
    expect((caught as EspError).message).toContain(`"${template}"`);
  });
});

describe('idProblem (docs/payload.md, Identity)', () => {
  it.each([
    ['W-17'],
    ['Ünïcødé-🛢-01'],
    ['a'.repeat(128)],
    ['🛢'.repeat(128)],
    ['ESP"01'],
    ['\\N'],
  ])('accepts %j', (id) => {
    expect(idProblem(id)).toBeUndefined();
  });

  it.each([
    ['empty', '', 'is empty'],
    ['129 characters', 'a'.repeat(129), 'is longer than 128 characters'],
    ['a tab', 'ESP\t01', 'contains U+0009 at 3'],
    ['a newline', 'ESP\n01', 'contains U+000A at 3'],
    ['a CR', 'ESP\r01', 'contains U+000D at 3'],
    ['NUL', 'ESP\u000001', 'contains U+0000 at 3'],
    ['DEL', 'ESP\u007f', 'contains U+007F at 3'],
    ['a C1 control', 'ESP\u0085', 'contains U+0085 at 3'],
    ['RLO (Trojan Source)', 'W\u202E71', 'contains U+202E at 1'],
    ['LRE', 'W\u202A', 'contains U+202A at 1'],
    ['RLI', 'W\u2067', 'contains U+2067 at 1'],
    ['PDI', 'W\u2069', 'contains U+2069 at 1'],
    ['+', 'W+1', 'contains U+002B at 1'],
    ['#', 'W#1', 'contains U+0023 at 1'],
    ['U+FFFD (invalid UTF-8 on the wire)', 'W\uFFFD', 'contains U+FFFD at 1'],
    ['a lone surrogate', 'W\uD83D', 'contains U+D83D at 1'],
  ])('refuses %s', (_what, id, why) => {
    expect(idProblem(id)).toBe(why);
  });
});
