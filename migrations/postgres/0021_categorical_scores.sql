-- Scores of other data types than BOOLEAN: a corrected review also sends the CATEGORICAL
-- `corrected_severity` score (reference/langfuse-otel.md section 4: a string value).
ALTER TABLE scores ADD COLUMN data_type TEXT NOT NULL DEFAULT 'BOOLEAN';
ALTER TABLE scores ADD COLUMN string_value TEXT;
ALTER TABLE scores ALTER COLUMN value DROP NOT NULL;
ALTER TABLE scores DROP CONSTRAINT scores_value_check;
ALTER TABLE scores ADD CONSTRAINT scores_value_check CHECK (
    (data_type = 'BOOLEAN' AND value IN (0, 1) AND string_value IS NULL)
    OR (data_type = 'CATEGORICAL' AND value IS NULL AND string_value IS NOT NULL)
);
