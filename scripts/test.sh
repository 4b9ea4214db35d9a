#!/usr/bin/env bash
# `npm test`: lint, typecheck, then every test (unit, licensed, integration) with the coverage
# thresholds of vitest.config.ts. First it provisions what the tests need, so that nothing missing
# shows up as a failing suite halfway through: the Debian tools below (as root with apt-get;
# otherwise it stops before running anything, with the line to type), the machine's servers (a
# check), and with no TEST_DATABASE_URL the local TimescaleDB (scripts/timescaledb.sh: built on
# first use, ~35 s). `npm test -- <files or vitest options>` runs just those tests, without lint,
# typecheck, coverage or the time-zone runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tools the tests run: command, Debian 12 package, what for. One line each. Installed without
# recommends: docker-compose recommends the Docker engine, prometheus the node exporter; the tests
# need neither.
TOOLS='
mosquitto        mosquitto        private brokers for the tests that must lose nothing
prometheus       prometheus       a real Prometheus scrapes /metrics
promtool         prometheus       checks the alert rules and runs their unit tests
docker-compose   docker-compose   `docker-compose config` validates docker-compose.yml; its PyYAML parses YAML for the dashboard tests
'

# The packages of the tools not on the PATH, each once.
missing_packages() {
  local cmd pkg _ out=()
  while read -r cmd pkg _; do
    [ -n "$cmd" ] && ! command -v "$cmd" >/dev/null && [[ " ${out[*]} " != *" $pkg "* ]] && out+=("$pkg")
  done <<<"$TOOLS"
  echo "${out[*]}"
}

missing="$(missing_packages)"
if [ -n "$missing" ]; then
  install="apt-get install -y --no-install-recommends $missing"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "npm test: installing $missing (Debian packages of tools the tests run)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive $install -qq; } >&2 || echo "npm test: apt-get failed" >&2
    missing="$(missing_packages)"
  fi
  if [ -n "$missing" ]; then
    sudo=''
    [ "$(id -u)" -eq 0 ] || sudo='sudo '
    echo "npm test: nothing was run; the tests need tools from the Debian packages $missing. Install them, then run npm test again:" >&2
    echo "  ${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
fi

# The machine's own servers (the brief's Debian machine; GitHub Actions sets the URLs to its
# services): the stock Mosquitto some tests publish through, and plain PostgreSQL for the
# fallback path without TimescaleDB.
reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
host_port() { node -e 'const u = new URL(process.argv[1]); console.log(u.hostname, u.port || process.argv[2])' "$1" "$2"; }
read -r mqtt_host mqtt_port <<<"$(host_port "${TEST_MQTT_URL:-mqtt://127.0.0.1:1883}" 1883)"
read -r pg_host pg_port <<<"$(host_port "${TEST_PLAIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" 5432)"
reachable "$mqtt_host" "$mqtt_port" || { echo "npm test: no MQTT broker on $mqtt_host:$mqtt_port; start one (mosquitto -d -p $mqtt_port) or set TEST_MQTT_URL" >&2; exit 1; }
reachable "$pg_host" "$pg_port" || { echo "npm test: no PostgreSQL on $pg_host:$pg_port; start one or set TEST_PLAIN_DATABASE_URL" >&2; exit 1; }

if [ "$#" -eq 0 ]; then
  npm run -s lint
  npm run -s typecheck
fi

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  TEST_DATABASE_URL="$(bash scripts/timescaledb.sh start | tail -n 1)"
  export TEST_DATABASE_URL
fi

if [ "$#" -eq 0 ]; then
  # Time handling must not depend on the host's zone: the decode and config unit tests again
  # under a UTC-3 zone with DST history and a UTC+3 one without.
  for zone in America/Sao_Paulo Asia/Riyadh; do
    TZ="$zone" npx vitest run test/unit/decode.test.ts test/unit/config.test.ts
  done
  exec npx vitest run --coverage
fi
exec npx vitest run "$@"
