-- The pipelined worker: who holds a lease, whether that holder is alive, and what to run first.
--
-- Each running process keeps a row in `workers` and refreshes `heartbeat_at` every few seconds.
-- Leases (deliveries, actions) and ticket claims name their holder; a row whose holder's
-- heartbeat stopped is taken over at once instead of waiting out the lease, which stays the
-- upper bound for a holder that hangs without dying.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE tickets ADD COLUMN claimed_by TEXT;

ALTER TABLE deliveries ADD COLUMN locked_by TEXT;
-- Attempts that ended in a panic or an unexpected error (not a tool or database outage): after
-- `[worker] max_attempts` of them the delivery gets the safe decision.
ALTER TABLE deliveries ADD COLUMN internal_errors INTEGER NOT NULL DEFAULT 0;

ALTER TABLE actions ADD COLUMN locked_by TEXT;
ALTER TABLE actions ADD COLUMN internal_errors INTEGER NOT NULL DEFAULT 0;
-- 0 on_fire, 1 urgent, 2 routine: under a backlog the worst tickets are acted on first.
ALTER TABLE actions ADD COLUMN priority SMALLINT NOT NULL DEFAULT 2;

-- The lease queries scan only pending rows, in the order they take them.
CREATE INDEX deliveries_pending ON deliveries (received_at) WHERE status = 'pending';
CREATE INDEX actions_pending ON actions (priority, next_attempt_at, id) WHERE status = 'pending';
