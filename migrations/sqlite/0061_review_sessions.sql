-- SQLite twin of migrations/postgres/0061_review_sessions.sql.
-- Review sessions held server-side (issue 24), so logging out or rotating a token ends a
-- session on every replica and a copied cookie stops working. The cookie carries a random
-- session id and an HMAC under the login's token; only the id's SHA-256 is stored here, so
-- reading this table gives no usable cookie.
CREATE TABLE review_sessions (
    id_hash    TEXT NOT NULL PRIMARY KEY,
    -- Who is logged in: a name from ESCALATOR_REVIEWERS_FILE, or the name typed with the
    -- admin token. Verdicts given in the session carry it.
    reviewer   TEXT NOT NULL,
    -- Which login opened it: `admin` (ESCALATOR_ADMIN_TOKEN) or `reviewer` (the file).
    login      TEXT NOT NULL CHECK (login IN ('admin', 'reviewer')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX review_sessions_expires_at ON review_sessions (expires_at);
