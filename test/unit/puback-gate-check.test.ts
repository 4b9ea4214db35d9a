// The PUBACK gate: it holds each QoS 1 PUBACK until acknowledge() and sends it then, rebuilt when
// MQTT.js built it plain. And the start-up check that the installed MQTT.js still sends a QoS 1
// PUBACK the way the gate intercepts it (through `_sendPacket`, after `handleMessage` called back):
// it passes on the pinned version and names what changed for handlers shaped otherwise.

import { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { PubackGate, type PublishHandler, pubackGateProblem } from '../../src/ingress/puback-gate.ts';

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

describe('PubackGate', () => {
  /** A real MqttClient, never connected, whose `_sendPacket` (where MQTT.js writes a packet) records instead. */
  function gated() {
    const client = new MqttClient(
      () => {
        throw new Error('never connected');
      },
      { manualConnect: true, protocolVersion: 5 },
    );
    const written: object[] = [];
    const internal = client as unknown as { _sendPacket: (p: object, cb?: () => void) => void; connected: boolean };
    internal._sendPacket = (p, cb) => {
      written.push(p);
      cb?.();
    };
    internal.connected = true;
    const released: boolean[] = [];
    const gate = new PubackGate(client, (sent) => released.push(sent));
    return { gate, written, released, send: (p: object) => internal._sendPacket(p) };
  }

  it('holds a PUBACK until acknowledge(), then sends it and reports it sent', () => {
    const { gate, written, released, send } = gated();
    const held = gate.hold(7);
    send({ cmd: 'puback', messageId: 7, reasonCode: 0 });
    expect(written).toEqual([]);
    expect(gate.held).toBe(1);
    held.acknowledge();
    expect(written).toEqual([{ cmd: 'puback', messageId: 7, reasonCode: 0 }]);
    expect(released).toEqual([true]);
    expect(gate.held).toBe(0);
  });

  it('sends a PUBACK with another reason code, properties or no reason code as MQTT.js built it', () => {
    const { gate, written, send } = gated();
    const built = [
      { cmd: 'puback', messageId: 8, reasonCode: 0x10 },
      { cmd: 'puback', messageId: 9, reasonCode: 0, properties: { reasonString: 'ok' } },
      { cmd: 'puback', messageId: 10 },
    ];
    const held = built.map((p) => gate.hold(p.messageId));
    for (const p of built) send(p);
    for (const h of held) h.acknowledge();
    expect(written).toHaveLength(3);
    for (const [i, p] of built.entries()) expect(written[i]).toBe(p);
  });

  it('passes other packets on at once', () => {
    const { gate, written, send } = gated();
    gate.hold(3);
    send({ cmd: 'pingreq' });
    send({ cmd: 'puback', messageId: 4, reasonCode: 0 });
    expect(written).toEqual([{ cmd: 'pingreq' }, { cmd: 'puback', messageId: 4, reasonCode: 0 }]);
  });
});
