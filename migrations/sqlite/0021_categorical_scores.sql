-- SQLite twin of migrations/postgres/0021_categorical_scores.sql. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with its rows (nothing references it).
CREATE TABLE scores_new (
    id              TEXT PRIMARY KEY,
    decision_id     TEXT        NOT NULL REFERENCES decisions (id),
    trace_id        TEXT,
    observation_id  TEXT,
    session_id      TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    value           INTEGER,
    comment         TEXT,
    metadata        TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TEXT        NOT NULL,
    last_error      TEXT,
    created_at      TEXT        NOT NULL,
    sent_at         TEXT,
    data_type       TEXT        NOT NULL DEFAULT 'BOOLEAN',
    string_value    TEXT,
    CONSTRAINT scores_value_check CHECK (
        (data_type = 'BOOLEAN' AND value IN (0, 1) AND string_value IS NULL)
        OR (data_type = 'CATEGORICAL' AND value IS NULL AND string_value IS NOT NULL)
    )
);
INSERT INTO scores_new (id, decision_id, trace_id, observation_id, session_id, name, value,
    comment, metadata, status, attempts, next_attempt_at, last_error, created_at, sent_at)
SELECT id, decision_id, trace_id, observation_id, session_id, name, value, comment, metadata,
    status, attempts, next_attempt_at, last_error, created_at, sent_at FROM scores;
DROP TABLE scores;
ALTER TABLE scores_new RENAME TO scores;
CREATE INDEX scores_due ON scores (status, next_attempt_at);
