#!/usr/bin/env bash
# The restore drill on the licensed TimescaleDB image, with compressed chunks and continuous
# aggregates (the GitHub workflow's job `restore-drill-licensed`; needs Docker, Node 20 and
# `npm ci`). The image is ops/timescaledb/Dockerfile built on IMAGE (default
# timescale/timescaledb:latest-pg17), with WAL archiving to pgBackRest as in docker-compose.yml:
#   1. the demo ingests the six wells through the service; compression policy and rollups run
#   2. a full backup
#   3. readings of a well committed before T, T noted, readings of another well after T
#   4. `npm run restore-drill` inside the container (pgBackRest and pg_ctl live there) restores to
#      T and must pass: per-well counts and checksums equal to the live database's up to T,
#      every reading committed by T and none after, compressed chunks present, every
#      continuous aggregate refreshing, the unique key intact.
# The last stdout line is the drill's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${1:-timescale/timescaledb:latest-pg17}"
NAME=esp-restore-drill
PORT="${ESP_DRILL_PORT:-55439}"
say() { printf '[restore-drill-licensed] %s\n' "$*" >&2; }

say "building the pgBackRest image on $IMAGE"
docker build -q -t esp-ingest-timescaledb:drill --build-arg TIMESCALEDB_IMAGE="$IMAGE" ops/timescaledb >/dev/null
docker rm -f "$NAME" >/dev/null 2>&1 || true
docker run -d --name "$NAME" -p "127.0.0.1:$PORT:5432" \
	-e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=esp -e TIMESCALEDB_TELEMETRY=off \
	-v "$PWD:/src:ro" -v "$PWD/ops/pgbackrest/pgbackrest.conf:/etc/pgbackrest/pgbackrest.conf:ro" \
	esp-ingest-timescaledb:drill \
	postgres -c archive_mode=on -c 'archive_command=pgbackrest --stanza=esp archive-push %p' -c archive_timeout=60 >/dev/null
trap 'rc=$?; if ((rc)); then docker logs --tail 40 "$NAME" >&2 || true; fi; docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT

as_pg() { docker exec -u postgres "$NAME" "$@"; }
sql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -At -d esp -c "$1"; }
# TCP, not the socket: during first-run initialisation the image runs a socket-only server.
for _ in $(seq 120); do as_pg pg_isready -q -h 127.0.0.1 -d esp && break; sleep 1; done
as_pg pg_isready -h 127.0.0.1 -d esp
as_pg pgbackrest --stanza=esp stanza-create
as_pg pgbackrest --stanza=esp check

say "1. the demo: the six wells through the service"
DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/esp" npm run demo
for job in $(sql "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name IN ('policy_compression', 'policy_columnstore')"); do
	sql "CALL run_job($job)"
done
for view in $(sql "SELECT view_name FROM timescaledb_information.continuous_aggregates"); do
	sql "CALL refresh_continuous_aggregate('$view', NULL, NULL)"
done
compressed=$(sql "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'esp_telemetry' AND is_compressed")
rollups=$(sql "SELECT count(*) FROM timescaledb_information.continuous_aggregates")
say "compressed chunks: $compressed, continuous aggregates: $rollups"
((compressed > 0 && rollups > 0))

say "2. full backup"
as_pg pgbackrest --stanza=esp --type=full backup
stop=$(as_pg pgbackrest --stanza=esp info --output=json | jq '.[0].backup[-1].timestamp.stop')

say "3. readings before T, T, readings after T"
# pgBackRest picks the newest backup that stopped before the target, in whole seconds.
until (($(sql "SELECT extract(epoch FROM clock_timestamp())::bigint") > stop)); do sleep 0.2; done
sql "INSERT INTO esp_telemetry (ts, well_id) SELECT timestamptz '2018-12-31 00:00+00' + i * interval '1 min', 'DRILL-BEFORE-T' FROM generate_series(0, 99) i"
target=$(sql "SELECT clock_timestamp()")
sql "INSERT INTO esp_telemetry (ts, well_id) SELECT timestamptz '2019-06-01 00:00+00' + i * interval '1 min', 'DRILL-AFTER-T' FROM generate_series(0, 99) i"
wal=$(sql "SELECT pg_walfile_name(pg_switch_wal())")
until [[ "$(sql "SELECT coalesce(last_archived_wal, '') >= '$wal' FROM pg_stat_archiver")" == t ]]; do sleep 0.5; done
expected=$(sql "SELECT count(*) FROM esp_telemetry WHERE well_id <> 'DRILL-AFTER-T'")

say "4. the drill, restoring to $target"
docker exec "$NAME" apk add --no-cache nodejs >/dev/null
verdict=$(docker exec -u postgres -w /src "$NAME" node --import tsx src/tools/restore-drill.ts \
	--stanza esp --target "$target" --pg-bin "$(as_pg pg_config --bindir)" --work-dir /var/lib/postgresql/drill \
	--to 2019-01-01T00:00:00Z --compare-url postgres://postgres@127.0.0.1:5432/esp) || true
printf '%s\n' "$verdict"
jq -e --argjson expected "$expected" '
	.ok and .restored.allRows == $expected and .restored.compressedChunks > 0
	and (.restored.rollups | length) > 0 and ([.rollupRefresh[]] | all(. == "refreshed"))
	and .uniqueKeyProbe == "rejected"' <<<"$verdict" >/dev/null
say "passed"
