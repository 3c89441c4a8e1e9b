-- SQLite twin of migrations/postgres/0020_reviews.sql (timestamps as RFC 3339 TEXT).
-- The daily review: verdicts on logged decisions, and the samples offered for review.
--
-- `reviews` keeps every verdict ever given (a re-judged decision gets a new row; the row with the
-- highest id is the one that counts). `origin` says where it came from: the terminal review
-- (`cli`), the web page (`web`), a spreadsheet (`import`), or an agent's change in the ticketing
-- tool (`override`, which only sees misses and is counted apart).
CREATE TABLE reviews (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id        TEXT        NOT NULL REFERENCES decisions (id),
    reviewer           TEXT        NOT NULL,
    reviewed_at        TEXT        NOT NULL,
    verdict            TEXT        NOT NULL CHECK (verdict IN ('correct', 'corrected')),
    -- The severity the reviewer says is right (the route follows from it); only when corrected.
    corrected_severity TEXT        CHECK (corrected_severity IN ('routine', 'urgent', 'on_fire')),
    corrected_route    TEXT        CHECK (corrected_route IN ('bot', 'human', 'engineering')),
    -- A one-line why (becomes why_this_label in labels add-from-reviews).
    why                TEXT,
    origin             TEXT        NOT NULL CHECK (origin IN ('cli', 'web', 'import', 'override')),
    -- The tool's event behind an override (e.g. `plain:pEv_…`): a redelivery is stored once.
    external_key       TEXT        UNIQUE,
    CONSTRAINT reviews_corrected_has_severity
        CHECK ((verdict = 'corrected') = (corrected_severity IS NOT NULL)),
    CONSTRAINT reviews_route_follows_severity
        CHECK ((corrected_severity IS NULL) = (corrected_route IS NULL))
);
CREATE INDEX reviews_decision ON reviews (decision_id, id);
CREATE INDEX reviews_reviewed_at ON reviews (reviewed_at);

-- Every decision ever offered for review, once: the primary key is what keeps a decision from
-- being offered again on another day.
CREATE TABLE review_samples (
    decision_id   TEXT        PRIMARY KEY REFERENCES decisions (id),
    -- The day sampled, YYYY-MM-DD in the review time zone, and the source filter (or `all`).
    sample_day    TEXT        NOT NULL,
    sample_source TEXT        NOT NULL CHECK (sample_source IN ('all', 'plain', 'pylon', 'api')),
    -- Order within the day's sample, and the seed of the draw (reproducible with --seed).
    position      INTEGER     NOT NULL,
    seed          INTEGER     NOT NULL,
    offered_at    TEXT        NOT NULL,
    -- Set when the reviewer skipped it: it is not offered again.
    skipped_at    TEXT       
);
CREATE INDEX review_samples_day ON review_samples (sample_day, sample_source, position);
