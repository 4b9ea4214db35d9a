-- Each rejection carries the SHA-256 of its raw payload, computed by the server
-- (a generated column: the writer's COPY is unchanged). It names a message across the rows of
-- its rejected readings and lets `npm run rejects -- replay` publish each message once.

ALTER TABLE rejected_messages
  ADD COLUMN IF NOT EXISTS payload_sha256 bytea GENERATED ALWAYS AS (sha256(payload)) STORED;

-- One message = (topic, received_at, payload_sha256); replay groups and deletes by it.
CREATE INDEX IF NOT EXISTS rejected_messages_message_idx ON rejected_messages (topic, received_at, payload_sha256);
