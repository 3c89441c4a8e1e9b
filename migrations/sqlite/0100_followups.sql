-- SQLite twin of migrations/postgres/0100_followups.sql (timestamps are RFC 3339 TEXT in UTC).
-- Follow-ups (issue 26): a customer's later message on a thread escalator already decided is
-- decided again on the conversation so far, as a new decision linked to the one it follows.
-- `supersedes` names that decision (NULL for a ticket's first decision and on older rows).
ALTER TABLE decisions ADD COLUMN supersedes TEXT;

-- One row per thread that has had a follow-up: re-decisions so far, when the last began, the
-- follow-up delivery that made it, and when the current window opened (NULL: none open).
CREATE TABLE followup_threads (
    source              TEXT        NOT NULL,
    ticket_id           TEXT        NOT NULL,
    redecisions         INTEGER     NOT NULL DEFAULT 0,
    last_redecided_at   TEXT,
    last_version        TEXT,
    window_opened_at    TEXT,
    window_opened_by    TEXT,
    PRIMARY KEY (source, ticket_id)
);
