-- The reconciler sweeps queued jobs in order of their last change, so that a sweep of what
-- changed since the last one reads only those rows (a full sweep only after Redis lost data).
DROP INDEX jobs_queued;
CREATE INDEX jobs_queued ON jobs (updated_at, id) WHERE status IN ('pending', 'scheduled');
