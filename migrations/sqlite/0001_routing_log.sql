-- SQLite twin of migrations/postgres/0001_routing_log.sql: timestamps are RFC 3339 TEXT in UTC
-- (they sort lexically), doubles are REAL.
-- Tickets as accepted (the inbox), decisions (the routing log) and actions (the outbox).
-- (source, ticket_id, version) is the idempotency key: unique at the database level.

CREATE TABLE tickets (
    source        TEXT        NOT NULL,
    ticket_id     TEXT        NOT NULL,
    version       TEXT        NOT NULL,
    subject       TEXT        NOT NULL,
    body          TEXT        NOT NULL,
    tier          TEXT        NOT NULL,
    arr_usd       REAL            ,
    customer_id   TEXT,
    received_at   TEXT        NOT NULL,
    -- A worker that claims the ticket holds it until then; an expired claim with no decision
    -- is taken over (the previous holder crashed).
    claimed_until TEXT        NOT NULL,
    PRIMARY KEY (source, ticket_id, version)
);
CREATE INDEX tickets_customer_received ON tickets (source, customer_id, received_at);

CREATE TABLE decisions (
    id                 TEXT PRIMARY KEY,
    source             TEXT             NOT NULL,
    ticket_id          TEXT             NOT NULL,
    ticket_version     TEXT             NOT NULL,
    severity           TEXT             NOT NULL CHECK (severity IN ('routine', 'urgent', 'on_fire')),
    route              TEXT             NOT NULL CHECK (route IN ('bot', 'human', 'engineering')),
    confidence         REAL             NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    reasoning          TEXT             NOT NULL,
    prompt_version     TEXT             NOT NULL,
    model              TEXT             NOT NULL,
    fallback           BOOLEAN          NOT NULL,
    fallback_reason    TEXT,
    notes              TEXT,
    tier               TEXT             NOT NULL,
    request_id         TEXT,
    input_tokens       INTEGER          NOT NULL DEFAULT 0,
    output_tokens      INTEGER          NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER          NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER          NOT NULL DEFAULT 0,
    cost_usd           REAL             NOT NULL DEFAULT 0,
    trace_id           TEXT,
    created_at         TEXT             NOT NULL,
    CONSTRAINT decisions_idempotency_key UNIQUE (source, ticket_id, ticket_version)
);
CREATE INDEX decisions_created_at ON decisions (created_at);

CREATE TABLE actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id     TEXT        NOT NULL REFERENCES decisions (id),
    source          TEXT        NOT NULL,
    ticket_id       TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TEXT        NOT NULL,
    locked_until    TEXT       ,
    last_error      TEXT,
    created_at      TEXT        NOT NULL,
    done_at         TEXT       ,
    CONSTRAINT actions_once UNIQUE (decision_id, kind)
);
CREATE INDEX actions_due ON actions (status, next_attempt_at);
