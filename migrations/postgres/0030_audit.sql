-- The weekly audit (`escalator audit`): what the routing log must keep for the five symptoms.
--
-- Latency climbed: the time of the model call behind each decision (NULL when no model was
-- called: the offline classifier alone, or a safe decision) and how many retries it took.
ALTER TABLE decisions ADD COLUMN model_latency_ms BIGINT;
ALTER TABLE decisions ADD COLUMN model_retries INTEGER NOT NULL DEFAULT 0;

-- Misroutes after a tool update: the payload version of each delivery (Plain's
-- `webhookMetadata.webhookTargetVersion`; for Pylon, whose trigger body is written by the
-- customer, its shape: the sorted top-level keys) and the fields the lenient parse had to do
-- without (comma-separated). Cost climbing: repeats of the key, which cost nothing but say the
-- sender is retrying.
ALTER TABLE deliveries ADD COLUMN webhook_version TEXT;
ALTER TABLE deliveries ADD COLUMN missing_fields TEXT;
ALTER TABLE deliveries ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_received_at ON deliveries (received_at);

-- Signed deliveries the parse refused (bad JSON, a missing or invalid field): never stored as
-- deliveries, so counted here, with the payload version when it could be read.
CREATE TABLE webhook_rejections (
    id              BIGSERIAL PRIMARY KEY,
    source          TEXT        NOT NULL,
    webhook_version TEXT,
    reason          TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_rejections_received_at ON webhook_rejections (received_at);
