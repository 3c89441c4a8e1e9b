-- SQLite twin of migrations/postgres/0050_delivery_trace_context.sql.
-- The W3C traceparent of the webhook request that stored a delivery, in its own column (it
-- rode inside the adapter's payload as `_traceparent` before), so the worker that decides the
-- delivery continues the request's trace. Additive: an older release ignores the column and
-- loses only that link. Pending rows stored by an older release keep their trace.

ALTER TABLE deliveries ADD COLUMN trace_context TEXT;

UPDATE deliveries SET trace_context = json_extract(payload, '$._traceparent')
WHERE status = 'pending' AND payload LIKE '%"_traceparent"%';
