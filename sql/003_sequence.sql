-- Sequence tracking: per well, the newest `seq` seen (in device-time order) and every gap found
-- (readings a device numbered and sent that never arrived: dropped by a broker queue, lost on
-- the way). Kept here, not in one process's memory, so every instance and every restart
-- continues from the same state: a gap is recorded once, in the transaction that moves the state.

CREATE TABLE IF NOT EXISTS well_sequence (
  well_id    text PRIMARY KEY,
  last_seq   bigint NOT NULL,
  -- Device time of the reading with last_seq; readings not newer than this are passed over.
  last_ts    timestamptz NOT NULL,
  -- Highest seq ever seen: SEQ_WRAP_BITS=auto infers the counter width from it.
  max_seq    bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sequence_gaps (
  id          bigserial PRIMARY KEY,
  well_id     text NOT NULL,
  -- When esp-ingest found the gap (the reading after it was committed).
  detected_at timestamptz NOT NULL DEFAULT now(),
  -- The readings on either side of the gap: seqs after_seq+1 … before_seq-1 (modulo the counter
  -- width) never arrived.
  after_seq   bigint NOT NULL,
  before_seq  bigint NOT NULL,
  after_ts    timestamptz NOT NULL,
  before_ts   timestamptz NOT NULL,
  missing     bigint NOT NULL CHECK (missing > 0)
);

CREATE INDEX IF NOT EXISTS sequence_gaps_well_idx ON sequence_gaps (well_id, before_ts);

COMMENT ON TABLE sequence_gaps IS 'Readings lost before reaching esp-ingest, found from gaps in each well''s seq (see README "Sequence gaps")';
