// The start-up check that the installed MQTT.js still sends a QoS 1 PUBACK the way the PUBACK
// gate intercepts it (through `_sendPacket`, after `handleMessage` called back): it passes on the
// pinned version and names what changed for handlers shaped otherwise.
import { describe, expect, it } from 'vitest';
import { type PublishHandler, pubackGateProblem } from '../../src/ingress/puback-gate.ts';

describe('pubackGateProblem', () => {
  it('finds nothing wrong with the installed MQTT.js', () => {
    expect(pubackGateProblem()).toBeUndefined();
  });

  it('reports a handler that writes the PUBACK without _sendPacket (it would go out before commit)', () => {
    const writesDirectly: PublishHandler = (client, _packet, done) => {
      client.emit('packetsend', { cmd: 'puback' });
      done();
    };
    expect(pubackGateProblem(writesDirectly)).toBe('the PUBACK never reached _sendPacket');
  });

  it('reports a handler that acknowledges later, outside the call', () => {
    const deferred: PublishHandler = (_client, _packet, done) => void setImmediate(done);
    expect(pubackGateProblem(deferred)).toBe('the QoS 1 PUBLISH handler did not complete synchronously');
  });

  it('reports a module that could not be loaded, with its reason', () => {
    expect(pubackGateProblem('mqtt/lib/handlers/publish could not be loaded (not found)')).toMatch(/could not be loaded/);
  });
});
