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
      { manualConnect: true, protocolVersion: 5, reconnectPeriod: 0 },
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
    return {
      gate,
      written,
      released,
      send: (p: object) => internal._sendPacket(p),
      /** The connection closes (MQTT.js emits 'close'), then, with `reconnect`, a new one is up. */
      close: (reconnect: boolean) => {
        internal.connected = false;
        client.emit('close');
        internal.connected = reconnect;
      },
    };
  }

  const puback = (messageId: number) => ({ cmd: 'puback', messageId, reasonCode: 0 });

  it('never sends a PUBACK MQTT.js makes after the connection closed, not on the next connection either', () => {
    const { gate, written, released, send, close } = gated();
    const held = gate.hold(5);
    close(true);
    expect(gate.onCurrentConnection(held)).toBe(false);
    // The message's handleMessage called back late (it waited for room in the buffer).
    send(puback(5));
    held.acknowledge();
    expect(written).toEqual([]);
    expect(released).toEqual([false]);
    expect(gate.stats()).toEqual({ held: 0, droppedOnClose: 1 });
  });

  it('gives the id held again on the next connection its own PUBACK, sent once after its acknowledge()', () => {
    const { gate, written, send, close } = gated();
    gate.hold(5);
    close(true);
    // The broker redelivers under the same id on the resumed session; the old message's late
    // PUBACK comes after that.
    const again = gate.hold(5);
    send(puback(5));
    send(puback(5));
    expect(written).toEqual([]);
    again.acknowledge();
    expect(written).toEqual([puback(5)]);
  });

  it('never PUBACKs a message MQTT.js handles after its connection closed, and counts it nowhere', () => {
    const { gate, written, released, send, close } = gated();
    close(false);
    // Packets parsed before the close are still handled, one per tick.
    const late = gate.hold(9);
    expect(gate.held).toBe(0);
    expect(late.release()).toBe(false);
    send(puback(9));
    late.acknowledge();
    expect(written).toEqual([]);
    expect(released).toEqual([false]);
  });

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
