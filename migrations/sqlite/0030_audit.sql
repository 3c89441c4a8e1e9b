-- SQLite twin of migrations/postgres/0030_audit.sql (timestamps as RFC 3339 TEXT).
-- The weekly audit (`escalator audit`): what the routing log must keep for the five symptoms.
ALTER TABLE decisions ADD COLUMN model_latency_ms INTEGER;
ALTER TABLE decisions ADD COLUMN model_retries INTEGER NOT NULL DEFAULT 0;

ALTER TABLE deliveries ADD COLUMN webhook_version TEXT;
ALTER TABLE deliveries ADD COLUMN missing_fields TEXT;
ALTER TABLE deliveries ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_received_at ON deliveries (received_at);

CREATE TABLE webhook_rejections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT        NOT NULL,
    webhook_version TEXT,
    reason          TEXT        NOT NULL,
    received_at     TEXT        NOT NULL
);
CREATE INDEX webhook_rejections_received_at ON webhook_rejections (received_at);
