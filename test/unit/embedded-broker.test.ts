// Unit tests for what the embedded broker refuses before acknowledging a PUBLISH (pure).
import { describe, expect, it } from 'vitest';
import { refusedPublishReason } from '../../src/broker/embedded-broker.ts';

describe('refusedPublishReason (embedded broker)', () => {
  it.each([
    ['esp/s/W-1/telemetry', undefined],
    ['esp/ /W-1/telemetry', undefined],
    ['esp//W-1/telemetry', 'empty_topic_level'],
    ['esp/s//telemetry', 'empty_topic_level'],
    ['/esp/s/W-1/telemetry', 'empty_topic_level'],
    ['esp/s/W-1/telemetry/', 'empty_topic_level'],
    ['$SYS/fake/new/clients', 'sys_topic'],
  ])('%s → %s', (topic, reason) => {
    expect(refusedPublishReason(topic)).toBe(reason);
  });
});
