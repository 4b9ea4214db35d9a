-- Core tables. Channel columns are added at start-up from the channel catalog
-- (src/decode/catalog.ts); TimescaleDB features are applied after migrations, where available
-- (src/sink/timescale.ts).

CREATE TABLE IF NOT EXISTS esp_telemetry (
  ts          timestamptz NOT NULL,             -- device time
  well_id     text        NOT NULL,             -- from the topic
  site        text,                             -- from the topic, when the template has {site}
  seq         bigint,                           -- device sequence number, when sent
  extra       jsonb,                            -- fields not in the catalog (UNKNOWN_FIELDS=keep)
  ingested_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT esp_telemetry_well_ts_key UNIQUE (well_id, ts)
);

CREATE TABLE IF NOT EXISTS rejected_messages (
  id            bigserial   PRIMARY KEY,
  received_at   timestamptz NOT NULL,
  topic         text        NOT NULL,
  well_id       text,
  reason        text        NOT NULL,          -- stable code, see README "Rejections"
  detail        text        NOT NULL,          -- what was wrong, for a person
  reading_index integer,                       -- index in a JSON array payload; NULL = whole message
  payload       bytea       NOT NULL            -- the raw bytes as received
);

CREATE INDEX IF NOT EXISTS rejected_messages_received_at_idx ON rejected_messages (received_at);
CREATE INDEX IF NOT EXISTS rejected_messages_reason_idx ON rejected_messages (reason, received_at);
