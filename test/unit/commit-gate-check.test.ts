// The start-up check that the installed aedes lets the commit gate hold a device's PUBACK: it
// passes on the pinned aedes and names what is wrong on a broker that acknowledges elsewhere.
import { createRequire } from 'node:module';
import { Aedes } from 'aedes';
import { describe, expect, it } from 'vitest';
import { commitGateProblem } from '../../src/broker/commit-gate.ts';

const mqttPacket = createRequire(import.meta.url)('mqtt-packet') as { generate(p: object): Buffer };

describe('commitGateProblem', () => {
  it('passes on the installed aedes', async () => {
    expect(await commitGateProblem()).toBeUndefined();
  });

  it('fails when the broker writes the PUBACK around the gate', async () => {
    const early = () =>
      Aedes.createBroker({
        authorizePublish: (client, packet, cb) => {
          (client!.conn as unknown as { write(b: Buffer): void }).write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId }));
          cb(null);
        },
      });
    expect(await commitGateProblem(early)).toBe('a PUBACK reached the device before release');
  });

  it('fails when no QoS 1 PUBLISH reaches the published hook', async () => {
    const refusing = () => Aedes.createBroker({ authorizePublish: (_client, _packet, cb) => cb(new Error('refused')) });
    expect(await commitGateProblem(refusing, 200)).toBe('no QoS 1 PUBLISH reached the published hook within 200 ms');
  });
});
