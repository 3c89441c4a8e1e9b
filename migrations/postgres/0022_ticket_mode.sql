-- Whether a claimed ticket's decision implies ticketing actions: gRPC Classify only logs, Route
-- (and every webhook ticket) acts. The worker that decides a ticket whose request died after
-- claiming it does what that request would have done.
ALTER TABLE tickets ADD COLUMN acts BOOLEAN NOT NULL DEFAULT TRUE;
