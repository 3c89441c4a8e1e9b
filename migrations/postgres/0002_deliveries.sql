-- The webhook inbox. A delivery is made durable here under its idempotency key before the sender
-- gets a 2xx; a worker then builds the ticket (fetching or enriching it from the tool), decides
-- it and marks the delivery done. A repeat of the key is a no-op insert.
-- Leasing follows the actions table: locked_until is set atomically by one worker at a time.

CREATE TABLE deliveries (
    source          TEXT        NOT NULL,
    ticket_id       TEXT        NOT NULL,
    version         TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    -- What the adapter parsed from the webhook body (JSON); ticket text, never secrets.
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    received_at     TIMESTAMPTZ NOT NULL,
    done_at         TIMESTAMPTZ,
    PRIMARY KEY (source, ticket_id, version)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
