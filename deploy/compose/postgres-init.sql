-- Runs once, when the compose stack's PostgreSQL volume is created: Langfuse gets a database
-- of its own next to escalator's (POSTGRES_DB).
CREATE DATABASE langfuse;
