// Unit tests for the MQTT topic template: subscription filter and well id / site extraction.
import { describe, expect, it } from 'vitest';
import { idCharsProblem, idProblem, parseTopicTemplate } from '../../src/decode/topic.ts';
import { EspError } from '../../src/errors.ts';

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

describe('idProblem: an allow-list of ASCII letters, digits, . _ -', () => {
  it.each([['W-17'], ['WELL-00003'], ['3w'], ['esp_01.a'], ['a'.repeat(128)]])('accepts %j', (id) => {
    expect(idProblem(id)).toBeUndefined();
  });

  const allowed = '; allowed: A-Za-z0-9._- (WELL_ID_CHARS)';
  it.each([
    ['empty', '', 'is empty'],
    ['129 characters', 'a'.repeat(129), 'is longer than 128 characters'],
    ['a zero-width space (a second, identical-looking ESP-009)', 'ESP-009\u200b', `contains U+200B at 7${allowed}`],
    ['a line separator', 'ESP\u2028009', `contains U+2028 at 3${allowed}`],
    ['a Cyrillic look-alike (U+0415 for E)', '\u0415SP-009', `contains U+0415 at 0${allowed}`],
    ['a space', 'ESP 009', `contains U+0020 at 3${allowed}`],
    ['a percent-encoded slash', 'ESP%2F009', `contains U+0025 "%" at 3${allowed}`],
    ['non-ASCII letters', 'Ünïcødé-01', `contains U+00DC at 0${allowed}`],
    ['an emoji (one character, two UTF-16 units)', 'W🛢', `contains U+1F6E2 at 1${allowed}`],
    ['a quote', 'ESP"01', `contains U+0022 """ at 3${allowed}`],
    ['a backslash', '\\N', `contains U+005C "\\" at 0${allowed}`],
    ['a tab', 'ESP\t01', `contains U+0009 at 3${allowed}`],
    ['NUL', 'ESP\u000001', `contains U+0000 at 3${allowed}`],
    ['DEL', 'ESP\u007f', `contains U+007F at 3${allowed}`],
    ['RLO (Trojan Source)', 'W\u202E71', `contains U+202E at 1${allowed}`],
    ['+', 'W+1', `contains U+002B "+" at 1${allowed}`],
    ['#', 'W#1', `contains U+0023 "#" at 1${allowed}`],
    ['U+FFFD (invalid UTF-8 on the wire)', 'W\uFFFD', `contains U+FFFD at 1${allowed}`],
    ['a lone surrogate', 'W\uD83D', `contains U+D83D at 1${allowed}`],
  ])('refuses %s', (_what, id, why) => {
    expect(idProblem(id)).toBe(why);
  });

  it('takes another set (WELL_ID_CHARS) and names it in the detail', () => {
    expect(idProblem('well:7', 'a-z0-9:')).toBeUndefined();
    expect(idProblem('Well:7', 'a-z0-9:')).toBe('contains U+0057 "W" at 0; allowed: a-z0-9: (WELL_ID_CHARS)');
  });
});

describe('idCharsProblem: what WELL_ID_CHARS may allow', () => {
  it.each([['A-Za-z0-9._-'], ['a-z0-9:'], ['\\p{L}\\p{N}_-']])('accepts %j', (chars) => {
    expect(idCharsProblem(chars)).toBeUndefined();
  });
  it.each([
    ['a set that is not a character class body (a range out of order)', 'z-a', 'not a valid character class body'],
    ['the topic separator', 'a-z/', 'U+002F'],
    ['a space', 'a-z ', 'U+0020'],
    ['every character', '\\s\\S', 'U+002F'],
    ['invisible format characters via a property', '\\p{Cf}a-z', 'U+200B'],
  ])('refuses %s', (_what, chars, named) => {
    expect(idCharsProblem(chars)).toContain(named);
  });
});
