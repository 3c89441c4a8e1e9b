-- The authenticated gRPC caller (issue 24): the name from `ESCALATOR_GRPC_CALLERS_FILE` whose
-- token the request carried. On the ticket, so a ticket the worker decides after its request's
-- process died keeps it; on the decision, so the routing log and the audit can split by caller.
-- NULL for webhook tickets, for gRPC without callers configured, and on rows from before.
ALTER TABLE tickets ADD COLUMN caller TEXT;
ALTER TABLE decisions ADD COLUMN caller TEXT;
