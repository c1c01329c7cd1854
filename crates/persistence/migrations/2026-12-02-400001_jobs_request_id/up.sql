-- The id of the HTTP request that submitted the job (its X-Request-Id), so that the worker's
-- log lines for the job can name it. Nullable without a default: adding it rewrites no rows.
ALTER TABLE jobs ADD COLUMN request_id text;
