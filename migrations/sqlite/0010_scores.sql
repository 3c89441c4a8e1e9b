-- Routing scores for Langfuse, sent from this outbox so a Langfuse outage loses none, and the
-- generation span id of each decision so a score can be attached to the model call.
ALTER TABLE decisions ADD COLUMN observation_id TEXT;

CREATE TABLE scores (
    -- The idempotency id sent to Langfuse: a re-send or a correction updates, never duplicates.
    id              TEXT PRIMARY KEY,
    decision_id     TEXT        NOT NULL REFERENCES decisions (id),
    trace_id        TEXT,
    observation_id  TEXT,
    session_id      TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    value           INTEGER     NOT NULL CHECK (value IN (0, 1)),
    comment         TEXT,
    metadata        TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TEXT        NOT NULL,
    last_error      TEXT,
    created_at      TEXT        NOT NULL,
    sent_at         TEXT       
);
CREATE INDEX scores_due ON scores (status, next_attempt_at);
