#!/usr/bin/env bash
# `npm test`: unit and integration tests. With no TEST_DATABASE_URL, provisions the local
# TimescaleDB (scripts/timescaledb.sh: builds it on first use, ~35 s) and uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  TEST_DATABASE_URL="$(bash scripts/timescaledb.sh start | tail -n 1)"
  export TEST_DATABASE_URL
fi
command -v mosquitto >/dev/null || { echo "mosquitto is not installed (apt-get install mosquitto)" >&2; exit 1; }
# Time handling must not depend on the host's zone (docs/payload.md, Time): the decode and config unit
# tests again under a UTC-3 zone with DST history and a UTC+3 one without. Skipped when the run
# names files.
if [ "$#" -eq 0 ]; then
  for zone in America/Sao_Paulo Asia/Riyadh; do
    TZ="$zone" npx vitest run test/unit/decode.test.ts test/unit/config.test.ts
  done
fi
exec npx vitest run "$@"
