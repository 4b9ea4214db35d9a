// docker-compose.yml, the Dockerfile and ops/ against the code: `docker-compose config` accepts
// the file; esp-ingest's variables are ones the config schema knows; port, topic, broker,
// scrape target, health check and Grafana wiring agree; mounted files exist. Docker itself is
// not needed: the image's CMD and HEALTHCHECK, and the operator tool `npm run rejects`, are run on
// a copy of exactly what the Dockerfile copies (its node_modules from the deps stage's own
// `npm ci --omit=dev`), against a real database and Mosquitto.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV_VARIABLE_NAMES, loadConfig } from '../../src/config/config.ts';
import { parseTopicTemplate } from '../../src/decode/topic.ts';
import { parseYaml, readYaml } from '../support/dashboards.ts';
import { BUNDLE_ARGS, freePort, freshDatabase, migratedDatabase, PrivateMosquitto, query, readyz, Teardown, waitFor } from '../support/harness.ts';
import { ROOT } from '../support/root.ts';

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  ports?: (string | { target: number; published?: number | string })[];
  volumes?: (string | { type?: string; source?: string; target: string })[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
}

/** `docker-compose config`: the file as Compose resolves it (relative mounts made absolute). */
function composeConfig(): { services: Record<string, Service> } {
  const out = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' },
    encoding: 'utf8',
  });
  return parseYaml(out) as { services: Record<string, Service> };
}

/** Container ports a service publishes. */
function containerPorts(s: Service): number[] {
  return (s.ports ?? []).map((p) => (typeof p === 'string' ? Number(/(\d+)(\/\w+)?$/.exec(p)![1]) : Number(p.target)));
}

/** Bind mounts: host source → container target (short or long syntax). */
function binds(s: Service): { source: string; target: string; readOnly: boolean }[] {
  return (s.volumes ?? []).flatMap((v) => {
    if (typeof v === 'string') {
      const [source, target, mode] = v.split(':');
      return source?.startsWith('/') ? [{ source, target: target!, readOnly: mode === 'ro' }] : [];
    }
    return v.type === 'bind' && v.source ? [{ source: v.source, target: v.target, readOnly: (v as { read_only?: boolean }).read_only === true }] : [];
  });
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfileInstructions(): { op: string; args: string }[] {
  const lines = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  return lines.map((l) => {
    const m = /^\s*(\w+)\s+(.*)$/.exec(l)!;
    return { op: m[1]!.toUpperCase(), args: m[2]!.trim() };
  });
}
const instructions = dockerfileInstructions();
/** The final stage: what the image holds and runs. */
const finalStage = instructions.slice(instructions.map((i) => i.op).lastIndexOf('FROM'));
/** The first stage: the production dependencies and the service's bundle. */
const depsStage = instructions.slice(0, instructions.length - finalStage.length);
/** The first stage's `npm ci` (up to any `&&`): how the image's node_modules are installed. */
const depsInstall =
  depsStage
    .find((i) => i.op === 'RUN' && i.args.startsWith('npm ci'))
    ?.args.split('&&')[0]
    ?.trim() ?? '';
/** What the first stage does after its `npm ci`: COPY from the context and RUN (the build). */
const depsSteps = depsStage.slice(depsStage.findIndex((i) => i.op === 'RUN' && i.args.startsWith('npm ci')) + 1);

const compose = composeConfig();
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
const ingest = svc('esp-ingest');
const ingestEnv = ingest.environment ?? {};
const one = (op: string) => finalStage.filter((i) => i.op === op).map((i) => i.args);
const healthcheckCmd = JSON.parse(/CMD\s+(\[.*\])\s*$/.exec(one('HEALTHCHECK')[0] ?? '')?.[1] ?? '[]') as string[];
const cmd = JSON.parse(one('CMD')[0] ?? '[]') as string[];

describe('docker-compose.yml', () => {
  it('runs TimescaleDB (with pgBackRest), its scheduled backups, Mosquitto (with its development credentials), esp-ingest, Prometheus and Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'backup',
      'esp-ingest',
      'grafana',
      'mosquitto',
      'mosquitto-credentials',
      'prometheus',
      'timescaledb',
    ]);
    // The official image, extended by ops/timescaledb/Dockerfile; the backup service is the same build.
    const tsdb = svc('timescaledb').build as { context: string; args?: Record<string, string> };
    expect(tsdb.args?.TIMESCALEDB_IMAGE).toMatch(/^timescale\/timescaledb:2\.(19\.[3-9]|[2-9]\d\.\d+)-pg1[5-9]$/);
    expect(readFileSync(path.join(tsdb.context, 'Dockerfile'), 'utf8')).toMatch(/^FROM \$\{TIMESCALEDB_IMAGE\}$/m);
    expect(svc('backup').build).toEqual(svc('timescaledb').build);
    expect(svc('backup').image).toBe(svc('timescaledb').image);
    expect(svc('mosquitto').image).toBe('eclipse-mosquitto:2');
    expect(ingest.build).toBeDefined();
  });

  it('backups: WAL archiving through pgBackRest, one config for both services, full and differential on a schedule, retention, the info file esp-ingest reads', () => {
    const tsdb = svc('timescaledb');
    const backup = svc('backup');
    const command = ((tsdb as { command?: string[] }).command ?? []).join(' ');
    const conf = readFileSync(path.join(ROOT, 'ops/pgbackrest/pgbackrest.conf'), 'utf8');
    const stanza = /^\[(?!global)(\w+)\]$/m.exec(conf)?.[1];
    expect(stanza).toBe('esp');
    expect(command).toContain('archive_mode=on');
    expect(command).toContain(`archive_command=pgbackrest --stanza=${stanza} archive-push %p`);
    expect(Number(/archive_timeout=(\d+)/.exec(command)?.[1])).toBeLessThanOrEqual(300);
    expect(conf).toMatch(/^repo1-retention-full=\d+$/m);
    for (const s of [tsdb, backup])
      expect(binds(s)).toContainEqual({ source: path.join(ROOT, 'ops/pgbackrest/pgbackrest.conf'), target: '/etc/pgbackrest/pgbackrest.conf', readOnly: true });
    const volumeTargets = (s: Service) => (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[1] : v.target));
    const repo = /^repo1-path=(.+)$/m.exec(conf)?.[1];
    const pgPath = /^pg1-path=(.+)$/m.exec(conf)?.[1];
    for (const target of [repo, pgPath, /^pg1-socket-path=(.+)$/m.exec(conf)?.[1]]) {
      expect(volumeTargets(tsdb)).toContain(target);
      expect(volumeTargets(backup)).toContain(target);
    }
    const cron = readFileSync(path.join(ROOT, 'ops/pgbackrest/crontab'), 'utf8')
      .split('\n')
      .filter((l) => /^\d/.test(l));
    expect(cron.some((l) => l.includes('backup.sh full'))).toBe(true);
    expect(cron.some((l) => l.includes('backup.sh diff'))).toBe(true);
    const info = ingestEnv.BACKUP_INFO_FILE;
    expect(info).toBeDefined();
    expect(volumeTargets(ingest)).toContain(path.dirname(info!));
    expect(volumeTargets(backup)).toContain(path.dirname(info!));
    expect(readFileSync(path.join(ROOT, 'ops/pgbackrest/backup.sh'), 'utf8')).toContain(`${path.dirname(info!)}`);
  });

  it("esp-ingest's variables all exist in the config schema, and the service accepts them", () => {
    expect(Object.keys(ingestEnv).length).toBeGreaterThan(3);
    for (const name of Object.keys(ingestEnv)) expect(ENV_VARIABLE_NAMES, name).toContain(name);
    expect(() => loadConfig(ingestEnv)).not.toThrow();
  });

  it('waits for a healthy database; every service_healthy dependency has a health check', () => {
    expect(ingest.depends_on).toMatchObject({ timescaledb: { condition: 'service_healthy' }, mosquitto: { condition: expect.any(String) } });
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [dep, { condition }] of Object.entries(Array.isArray(s.depends_on) ? {} : (s.depends_on ?? {}))) {
        if (condition === 'service_healthy') expect(svc(dep).healthcheck?.test, `${name} waits for ${dep}`).toBeDefined();
      }
    }
  });

  it('HTTP port: HTTP_PORT = published port = Dockerfile EXPOSE = Prometheus target = health checks', () => {
    const port = loadConfig(ingestEnv).http.port;
    expect(containerPorts(ingest)).toEqual([port]);
    expect(one('EXPOSE')).toEqual([String(port)]);
    // Without HTTP_PORT the image listens on the config default, which must be what it exposes.
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y' }).http.port).toBe(port);
    expect(healthcheckCmd.join(' ')).toContain(`process.env.HTTP_PORT || ${port}`);
    expect(ingest.healthcheck?.test).toEqual(['CMD', ...healthcheckCmd]);
    const prom = readYaml(path.join(ROOT, 'ops/prometheus/prometheus.yml')) as {
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.job_name === 'esp-ingest');
    expect(job?.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job?.static_configs.flatMap((c) => c.targets)).toEqual([`esp-ingest:${port}`]);
  });

  it("MQTT: the broker service mounts mosquitto.conf, and its listener is MQTT_URL's port", () => {
    const url = new URL(ingestEnv.MQTT_URL ?? '');
    const broker = svc(url.hostname);
    expect(binds(broker)).toContainEqual({ source: path.join(ROOT, 'mosquitto.conf'), target: '/mosquitto/config/mosquitto.conf', readOnly: true });
    const conf = readFileSync(path.join(ROOT, 'mosquitto.conf'), 'utf8');
    const listeners = [...conf.matchAll(/^listener\s+(\d+)/gm)].map((m) => Number(m[1]));
    // The plain listener for the service inside the compose network, the TLS one for devices.
    expect(listeners).toEqual([Number(url.port || 1883), 8883]);
    expect(containerPorts(broker)).toEqual(listeners);
    // A payload the service accepts must fit the broker's packet limit (mosquitto.conf: +8 KiB).
    const maxPacket = Number(/^max_packet_size\s+(\d+)/m.exec(conf)?.[1]);
    expect(maxPacket).toBeGreaterThanOrEqual(loadConfig(ingestEnv).decode.messageMaxBytes + 8192);
  });

  it("MQTT: the example topic in the file's header is one MQTT_TOPIC accepts", () => {
    const header = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const topic = /mosquitto_pub .*-t (\S+)/.exec(header)?.[1];
    expect(topic).toBeDefined();
    expect(parseTopicTemplate(loadConfig(ingestEnv).mqtt.topicTemplate).match(topic!)).toEqual({ wellId: 'WELL-1', site: 'site-a' });
  });

  it('every mounted file or directory exists in the repository; the init script is executable', () => {
    const mounts = Object.values(compose.services).flatMap(binds);
    expect(mounts.length).toBeGreaterThanOrEqual(6);
    for (const m of mounts) {
      expect(m.source.startsWith(ROOT), m.source).toBe(true);
      expect(existsSync(m.source), m.source).toBe(true);
      expect(m.readOnly, `${m.source} is mounted read-only`).toBe(true);
      if (m.target.startsWith('/docker-entrypoint-initdb.d/')) expect(statSync(m.source).mode & 0o111, m.source).not.toBe(0);
    }
  });

  it('Grafana: data sources point at the compose services, with the role the database creates', () => {
    const grafana = svc('grafana');
    const tsdb = svc('timescaledb');
    const ds = (
      readYaml(path.join(ROOT, 'ops/grafana/provisioning/datasources/datasources.yml')) as {
        datasources: { type: string; url: string; user?: string; jsonData?: { database?: string }; secureJsonData?: { password?: string } }[];
      }
    ).datasources;
    const prom = ds.find((d) => d.type === 'prometheus')!;
    const pgds = ds.find((d) => d.type === 'grafana-postgresql-datasource')!;
    const promUrl = new URL(prom.url);
    expect(containerPorts(svc(promUrl.hostname))).toEqual([Number(promUrl.port)]);
    const [pgHost, pgPort] = pgds.url.split(':');
    expect(pgHost).toBe('timescaledb');
    expect(pgPort).toBe('5432');
    expect(pgds.jsonData?.database).toBe(tsdb.environment?.POSTGRES_DB);
    expect(new URL(ingestEnv.DATABASE_URL!).pathname).toBe(`/${tsdb.environment?.POSTGRES_DB}`);
    // $VARS in provisioning are read from Grafana's environment; the role is created by the
    // init script from the database's environment: both must agree.
    for (const [value, name] of [
      [pgds.user, 'GRAFANA_DB_USER'],
      [pgds.secureJsonData?.password, 'GRAFANA_DB_PASSWORD'],
    ] as const) {
      expect(value).toBe(`$${name}`);
      expect(grafana.environment?.[name], name).toBeTruthy();
      expect(grafana.environment?.[name], name).toBe(tsdb.environment?.[name]);
    }
  });

  it('Grafana: the dashboard provider reads the mounted dashboards; the home dashboard is one of them', () => {
    const grafana = svc('grafana');
    const mount = binds(grafana).find((b) => b.source === path.join(ROOT, 'ops/grafana/dashboards'));
    expect(mount).toBeDefined();
    const providers = (readYaml(path.join(ROOT, 'ops/grafana/provisioning/dashboards/dashboards.yml')) as { providers: { options: { path: string } }[] })
      .providers;
    expect(providers.map((p) => p.options.path)).toEqual([mount!.target]);
    const home = grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    expect(path.dirname(home)).toBe(mount!.target);
    expect(existsSync(path.join(ROOT, 'ops/grafana/dashboards', path.basename(home)))).toBe(true);
  });
});

/** A stand-in for the service's password file that compose mounts (MQTT_PASSWORD_FILE must be readable at start). */
function servicePasswordFile(): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'esp-compose-auth-')), 'ingest.password');
  writeFileSync(file, 'stand-in\n', { mode: 0o600 });
  return file;
}

describe('Dockerfile', () => {
  it('runs node on src/main.ts as a non-root user, stops with SIGTERM, has a health check', () => {
    expect(finalStage[0]?.args).toMatch(/^node:20-(bookworm-)?slim$/);
    expect(depsInstall).toMatch(/^npm ci --omit=dev\b/);
    // What the bench runs as "the service" (test/support/service-process.ts BUNDLE_ARGS).
    expect(cmd).toEqual(['node', ...BUNDLE_ARGS]);
    expect(depsSteps.map((i) => `${i.op} ${i.args}`)).toEqual(['COPY src/ src/', 'RUN npm run build']);
    expect(one('USER')).toEqual(['node']);
    expect(one('STOPSIGNAL')).toEqual(['SIGTERM']);
    expect(healthcheckCmd[0]).toBe('node');
  });

  it('copies nothing that .dockerignore leaves out of the build context', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'));
    const sources = one('COPY')
      .filter((a) => !a.startsWith('--from'))
      .flatMap((a) => a.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const s of sources) expect(ignored, s).not.toContain(s.replace(/\/$/, ''));
  });

  describe("the image's files, CMD, HEALTHCHECK and the rejects tool, without Docker", () => {
    const t = new Teardown();
    const dir = mkdtempSync(path.join(tmpdir(), 'esp-image-'));
    const deps = mkdtempSync(path.join(tmpdir(), 'esp-image-deps-'));
    const mosquitto = new PrivateMosquitto();
    let httpPort = 0;
    const health = (port: number) =>
      spawnSync(process.execPath, healthcheckCmd.slice(1), { env: { PATH: process.env.PATH ?? '', HTTP_PORT: String(port) }, timeout: 10_000 }).status;

    beforeAll(async () => {
      t.add(() => rmSync(dir, { recursive: true, force: true }));
      t.add(() => rmSync(deps, { recursive: true, force: true }));
      // The deps stage: its `npm ci --omit=dev` on the lockfile (from npm's cache where it can), so
      // the image's files hold the production dependencies only.
      for (const f of ['package.json', 'package-lock.json']) cpSync(path.join(ROOT, f), path.join(deps, f));
      execFileSync('sh', ['-c', `${depsInstall} --prefer-offline`], { cwd: deps, stdio: 'ignore', timeout: 120_000 });
      // Then the rest of that stage: the sources copied in, the bundle built.
      for (const step of depsSteps) {
        const parts = step.args.split(/\s+/);
        if (step.op === 'COPY') cpSync(path.join(ROOT, parts[0]!), path.join(deps, parts[1]!), { recursive: true });
        else if (step.op === 'RUN') execFileSync('sh', ['-c', step.args], { cwd: deps, stdio: 'ignore', timeout: 120_000 });
      }
      // What the final stage copies from the deps stage (/app/…) and from the build context.
      for (const args of one('COPY')) {
        const parts = args.split(/\s+/);
        if (parts[0]?.startsWith('--from')) {
          const [from, to] = [parts[1]!.replace(/^\/app\//, ''), parts[2]!];
          if (from.replace(/\/$/, '') === 'node_modules') renameSync(path.join(deps, 'node_modules'), path.join(dir, 'node_modules'));
          else cpSync(path.join(deps, from), path.join(dir, to), { recursive: true });
          continue;
        }
        const dest = parts.at(-1)!;
        for (const src of parts.slice(0, -1))
          cpSync(path.join(ROOT, src), path.join(dir, dest.endsWith('/') && !src.endsWith('/') ? path.join(dest, src) : dest), { recursive: true });
      }
      t.add(() => mosquitto.destroy());
      await mosquitto.start();
      httpPort = await freePort();
    });
    afterAll(() => t.run());

    it('is healthy once ready, stops cleanly on the STOPSIGNAL, and is unhealthy then', async () => {
      expect(health(httpPort)).toBe(1);
      const databaseUrl = await freshDatabase(t);
      const proc = spawn(cmd[0] === 'node' ? process.execPath : cmd[0]!, cmd.slice(1), {
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '',
          NODE_ENV: 'production',
          ...ingestEnv,
          DATABASE_URL: databaseUrl,
          MQTT_URL: mosquitto.url,
          // What compose mounts from the mosquitto-auth volume (the private broker here is anonymous).
          MQTT_PASSWORD_FILE: servicePasswordFile(),
          HTTP_PORT: String(httpPort),
          HTTP_HOST: '127.0.0.1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      t.add(() => proc.kill('SIGKILL'));
      await waitFor(
        'service ready from the image files',
        async () => {
          if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${out.slice(-2000)}`);
          return (await readyz(httpPort)).status === 200;
        },
        60_000,
        100,
      );
      expect(health(httpPort)).toBe(0);
      proc.kill(one('STOPSIGNAL')[0] as NodeJS.Signals);
      expect(await exited).toBe(0);
      expect(health(httpPort)).toBe(1);
    });

    it('runs the operator tool as the README says: `npm run rejects -- list` with production dependencies only', async () => {
      expect(existsSync(path.join(dir, 'node_modules', 'vitest')), 'a devDependency in the image').toBe(false);
      const databaseUrl = await migratedDatabase(t);
      await query(
        databaseUrl,
        "INSERT INTO rejected_messages (received_at, topic, reason, detail, payload) VALUES ('2024-05-01T00:00:00Z', 'esp/north/W-1/telemetry', 'invalid_json', 'x', '\\x7b')",
      );
      // The container's environment (compose's variables), as `docker compose exec` gives it.
      const env = {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        NODE_ENV: 'production',
        ...ingestEnv,
        DATABASE_URL: databaseUrl,
        MQTT_URL: mosquitto.url,
      };
      const npm = (args: string[]) => spawnSync('npm', ['run', '--silent', 'rejects', '--', ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
      const list = npm(['list']);
      expect(list.stderr).toBe('');
      expect(list.status).toBe(0);
      expect(list.stdout.trim().split('\n')).toEqual(['reason        count  latest', 'invalid_json      1  2024-05-01T00:00:00.000Z']);
      const dryRun = npm(['replay', '--reason', 'invalid_json', '--dry-run']);
      expect(dryRun.stdout.trim()).toBe('dry run: 1 message(s) with reason invalid_json would be published again');
      expect(npm(['list', '--reason', 'no_such_reason']).status).toBe(2);
    });
  });
});
