-- A change the lake refuses is kept, not bounced back to the sender forever: Debezium Server retries a
-- refused post a fixed number of times and then stops capturing, so one bad change would end change
-- capture for good. The service writes it here (raw event, reason, source position) and answers 2xx.
CREATE TABLE lake.cdc_dead_letters (
    id             bigserial PRIMARY KEY,
    event          text NOT NULL,
    event_sha256   bytea NOT NULL UNIQUE,
    upstream_table text,
    lsn            bigint,
    op             text,
    reason         text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    attempts       int NOT NULL DEFAULT 1,
    resolved_at    timestamptz,
    resolution     text CHECK (resolution IN ('landed', 'duplicate', 'ignored', 'discarded')),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE INDEX cdc_dead_letters_unresolved ON lake.cdc_dead_letters (id) WHERE resolved_at IS NULL;
COMMENT ON TABLE lake.cdc_dead_letters IS
    'change events the lake refused: the event as posted (JSON text, non-ASCII escaped, so a NUL survives), '
    'why, its source position where readable; seen again it counts an attempt; resolved by a replay that '
    'applies it (contextlake cdc replay) or by a discard';
