-- SQLite twin of migrations/postgres/0040_weighting.sql.
-- Tier weighting: the classifier's own severity, the rule that raised it, ARR, tier source and
-- whether enrichment failed (the default tier was used).
ALTER TABLE decisions ADD COLUMN model_severity TEXT
    CHECK (model_severity IN ('routine', 'urgent', 'on_fire'));
ALTER TABLE decisions ADD COLUMN weighting_rule TEXT;
ALTER TABLE decisions ADD COLUMN arr_usd REAL;
ALTER TABLE decisions ADD COLUMN tier_source TEXT;
ALTER TABLE decisions ADD COLUMN enrichment_failed BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE tickets ADD COLUMN tier_source TEXT;
ALTER TABLE tickets ADD COLUMN enrichment_failed BOOLEAN NOT NULL DEFAULT FALSE;
