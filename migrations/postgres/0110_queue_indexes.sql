-- The inbox and the outbox under a backlog (issue 25). Each leases the oldest or worst rows
-- through its partial index `*_pending`, in order, stopping after a batch. The older
-- `*_due (status, next_attempt_at)` indexes gave the planner a second way in, chosen when the
-- table's statistics lagged its backlog: every pending row read and sorted per lease (8,000
-- rows per lease of 64 under load). They are gone; the backlog figures (pending and failed)
-- read the partial indexes `*_pending` and `*_failed` instead, and every other statement on
-- these tables finds its rows by key.
DROP INDEX IF EXISTS deliveries_due;
DROP INDEX IF EXISTS actions_due;
CREATE INDEX deliveries_failed ON deliveries (received_at) WHERE status = 'failed';
CREATE INDEX actions_failed ON actions (created_at) WHERE status = 'failed';

-- A lease changes no indexed column, so with room on the page PostgreSQL updates the row in
-- place (a HOT update: no new index entries); 80% leaves that room. Queue tables churn: analyse
-- them after 2% of their rows changed (default 10%) so the planner's row counts follow the
-- backlog, and vacuum them after 5% (default 20%).
ALTER TABLE deliveries SET (fillfactor = 80, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE actions SET (fillfactor = 80, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_scale_factor = 0.05);
