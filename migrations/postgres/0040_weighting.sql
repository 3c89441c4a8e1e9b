-- Tier weighting (`src/weighting`): the decision keeps the classifier's own severity beside the
-- final one, the rule that raised it (NULL: the classifier's severity stood), the ARR and where
-- the tier came from, and whether enrichment failed so the default tier was used. Rows logged
-- before this migration have NULL model_severity (read as their severity: no rule existed)
-- and NULL tier_source (unknown).
ALTER TABLE decisions ADD COLUMN model_severity TEXT
    CHECK (model_severity IN ('routine', 'urgent', 'on_fire'));
ALTER TABLE decisions ADD COLUMN weighting_rule TEXT;
ALTER TABLE decisions ADD COLUMN arr_usd DOUBLE PRECISION;
ALTER TABLE decisions ADD COLUMN tier_source TEXT;
ALTER TABLE decisions ADD COLUMN enrichment_failed BOOLEAN NOT NULL DEFAULT FALSE;

-- The ticket as accepted keeps them too, so a ticket the worker recovers is decided with the
-- tier source its enrichment found.
ALTER TABLE tickets ADD COLUMN tier_source TEXT;
ALTER TABLE tickets ADD COLUMN enrichment_failed BOOLEAN NOT NULL DEFAULT FALSE;
