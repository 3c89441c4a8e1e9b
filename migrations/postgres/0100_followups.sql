-- Follow-ups (issue 26): a customer's later message on a thread escalator already decided is
-- decided again on the conversation so far, as a new decision linked to the one it follows.
-- `supersedes` names that decision (NULL for a ticket's first decision and on older rows).
ALTER TABLE decisions ADD COLUMN supersedes TEXT;

-- One row per thread that has had a follow-up: how many re-decisions it cost so far
-- (`[followups] max_per_thread` bounds them), when the last one began (`min_interval_secs`
-- after it the next may run), which follow-up delivery made it (so that delivery's retry after
-- a crash decides instead of counting itself covered), and when the current window opened
-- (messages inside it are read together at its end; NULL: no window open) and by which
-- delivery (the one that may end it).
CREATE TABLE followup_threads (
    source              TEXT        NOT NULL,
    ticket_id           TEXT        NOT NULL,
    redecisions         INTEGER     NOT NULL DEFAULT 0,
    last_redecided_at   TIMESTAMPTZ,
    last_version        TEXT,
    window_opened_at    TIMESTAMPTZ,
    window_opened_by    TEXT,
    PRIMARY KEY (source, ticket_id)
);
