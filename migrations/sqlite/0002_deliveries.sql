-- SQLite twin of migrations/postgres/0002_deliveries.sql (timestamps are RFC 3339 TEXT in UTC).
-- The webhook inbox. A delivery is made durable here under its idempotency key before the sender
-- gets a 2xx; a worker then builds the ticket (fetching or enriching it from the tool), decides
-- it and marks the delivery done. A repeat of the key is a no-op insert.

CREATE TABLE deliveries (
    source          TEXT        NOT NULL,
    ticket_id       TEXT        NOT NULL,
    version         TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TEXT        NOT NULL,
    locked_until    TEXT       ,
    last_error      TEXT,
    received_at     TEXT        NOT NULL,
    done_at         TEXT       ,
    PRIMARY KEY (source, ticket_id, version)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
