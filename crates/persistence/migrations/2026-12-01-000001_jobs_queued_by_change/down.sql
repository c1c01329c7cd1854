DROP INDEX jobs_queued;
CREATE INDEX jobs_queued ON jobs (id) WHERE status IN ('pending', 'scheduled');
