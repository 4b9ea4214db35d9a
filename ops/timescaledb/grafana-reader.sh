#!/usr/bin/env bash
# Read-only database role for Grafana. Run once by the TimescaleDB image at the first start of an
# empty data volume (mounted into /docker-entrypoint-initdb.d by docker-compose.yml), before
# esp-ingest has created any table: hence default privileges, so the tables and rollup views the
# service creates later (as POSTGRES_USER) are readable too. Idempotent.
# Env: POSTGRES_USER, POSTGRES_DB (set by the image), GRAFANA_DB_USER (default grafana_reader),
# GRAFANA_DB_PASSWORD (required); psql's PGHOST/PGPORT when run by hand.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-esp}" \
  -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
  -v password="${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD must be set}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'reader', :'password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'reader') \gexec
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
-- A panel query can neither write nor run for long.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
ALTER ROLE :"reader" SET statement_timeout = '30s';
SQL
