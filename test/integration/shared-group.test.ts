// Three instances in one shared subscription group on a private Mosquitto (the project's
// mosquitto.conf, MQTT 5, each its own client id), twenty wells publishing QoS 1. Mosquitto deals
// the group's messages round-robin to every member with a session, offline ones included. One
// member is killed with `kill -9` and comes back: its share waits in its session meanwhile and is
// stored when it returns. Another leaves for good with SIGTERM (a scale-down): it unsubscribes,
// commits what it was dealt and ends its session, so every later message goes to the survivors.
// In the end: published = stored, no duplicate rows.
import { afterAll, expect, it } from 'vitest';
import { freshDatabase, metric, PrivateMosquitto, type ServiceProcess, startService, Teardown, waitFor } from '../support/harness.ts';
import { checkStored, WellLoad, waitStored } from '../support/well-load.ts';

const t = new Teardown();
afterAll(() => t.run());

const committed = (svc: ServiceProcess) => metric(svc.httpPort, 'esp_ingest_readings_committed_total');

it('stores every reading once across a crashed member that returns and a member that scales down', async () => {
  const broker = new PrivateMosquitto();
  await broker.start();
  t.add(() => broker.destroy());
  const databaseUrl = await freshDatabase(t);
  const env = (id: string) => ({
    DATABASE_URL: databaseUrl,
    MQTT_URL: broker.url,
    MQTT_CLIENT_ID: `ingest-${id}`,
    MQTT_SHARED_GROUP: 'ingest',
    BATCH_FLUSH_INTERVAL_MS: '100',
  });
  const svc: Record<'a' | 'b' | 'c', ServiceProcess> = {
    a: await startService(t, env('a')),
    b: await startService(t, env('b')),
    c: await startService(t, env('c')),
  };
  for (const s of Object.values(svc)) expect(await metric(s.httpPort, 'esp_ingest_mqtt_shared_group_member{group="ingest"}')).toBe(1);

  const wells = Array.from({ length: 20 }, (_, i) => `W-${String(i + 1).padStart(2, '0')}`);
  const load = new WellLoad({ url: broker.url, wells, ratePerWellHz: 10 });
  await load.start();
  t.add(() => load.stop(1_000).catch(() => undefined));
  await waitFor('every member committing', async () => (await Promise.all(Object.values(svc).map(committed))).every((n) => n >= 50), 20_000);

  // kill -9 of b: Mosquitto keeps dealing b a third of the messages, parked in its session.
  svc.b.proc.kill('SIGKILL');
  await svc.b.exited;
  const downSince = Date.now();
  const [a0, c0] = [await committed(svc.a), await committed(svc.c)];
  await waitFor('the others commit on', async () => (await committed(svc.a)) >= a0 + 150 && (await committed(svc.c)) >= c0 + 150, 20_000);
  const parked = (await checkStored(databaseUrl, load.ackedKeys(0))).missing.filter((k) => load.ackedKeys(downSince).has(k)).length;
  expect(parked, "readings waiting in the crashed member's session").toBeGreaterThan(0);
  svc.b = await startService(t, env('b'));
  await waitFor('b back and committing', async () => (await committed(svc.b)) >= parked, 20_000);

  // SIGTERM of c, never restarted: a scale-down.
  expect(await svc.c.proc.kill('SIGTERM')).toBe(true);
  expect(await svc.c.exited).toBe(0);
  expect(svc.c.output()).toContain('shared_group_left');
  const goneAt = Date.now();
  const [a1, b1] = [await committed(svc.a), await committed(svc.b)];
  await waitFor('the survivors commit on', async () => (await committed(svc.a)) >= a1 + 150 && (await committed(svc.b)) >= b1 + 150, 20_000);
  const { published, acked } = await load.stop(10_000);
  expect(acked).toBe(published);
  // Every message published after the scale-down is stored by the survivors within 5 s.
  const later = load.ackedKeys(goneAt);
  expect(later.size).toBeGreaterThan(200);
  const afterScaleDown = await waitStored(databaseUrl, later, 5_000);
  expect(afterScaleDown.missing).toEqual([]);
  const all = await waitStored(databaseUrl, load.allKeys(), 30_000);
  expect(all).toMatchObject({ stored: published, duplicateRows: 0, missing: [] });
  console.log(`published ${published}; parked while b was down ${parked}; after the scale-down ${later.size}, all stored within 5 s`);
});
