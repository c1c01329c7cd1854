-- Job state changes become heap-only (HOT) updates: no index of `jobs` names a column that a
-- claim, a progress report or an outcome changes (`status`, `updated_at`, ...), and each page
-- keeps room for the next version of its rows. A HOT update writes the new row version to the
-- same page and no index entry: measured here, claim + completion went from ~1,580 to ~360 WAL
-- bytes per job. What the dropped indexes served now reads `unfinished_jobs`, kept by triggers.
DROP INDEX jobs_by_user_status;
DROP INDEX jobs_by_status;
DROP INDEX jobs_queued;
DROP INDEX jobs_running;
DROP INDEX jobs_waiting;
ALTER TABLE jobs SET (fillfactor = 50);

-- The list indexes in ascending order (scanned backwards for newest first): new entries then
-- land at the right end, where B-tree splits leave full pages and log little; in descending
-- order every new entry went to the left end, and each split logged half a page.
DROP INDEX jobs_by_user;
DROP INDEX jobs_by_created;
CREATE INDEX jobs_by_user ON jobs (user_id, created_at, id);
CREATE INDEX jobs_by_created ON jobs (created_at, id);

-- One row per job that has not finished (`waiting`, `pending`, `scheduled` or `running`): a
-- small, narrow index of the backlog, so the reconciler, the per-user cap, the queue-depth
-- gauge and status filters on unfinished jobs read the backlog, never the whole history.
-- `queued_at` is when the job last entered the queue (`pending` or `scheduled` from another
-- state, or created): the reconciler's sweep of what changed since its last one reads it.
CREATE TABLE unfinished_jobs (
    user_id   uuid NOT NULL,
    job_id    uuid NOT NULL,
    queued_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, job_id)
);
CREATE INDEX unfinished_jobs_by_queued ON unfinished_jobs (queued_at, job_id);

INSERT INTO unfinished_jobs (user_id, job_id, queued_at)
SELECT user_id, id, updated_at FROM jobs
WHERE status IN ('waiting', 'pending', 'scheduled', 'running');

-- Statement-level triggers with transition tables: one INSERT, UPDATE or DELETE of many jobs
-- (a batch, a group commit, a claim of many) costs one statement here, not one per row. They
-- run as the table owner (SECURITY DEFINER), so the service roles only read `unfinished_jobs`.
CREATE FUNCTION unfinished_jobs_on_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    INSERT INTO unfinished_jobs (user_id, job_id, queued_at)
    SELECT n.user_id, n.id, now() FROM new_rows n
    WHERE n.status IN ('waiting', 'pending', 'scheduled', 'running');
    RETURN NULL;
END
$$;

CREATE FUNCTION unfinished_jobs_on_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    DELETE FROM unfinished_jobs u
    USING new_rows n
    WHERE u.user_id = n.user_id AND u.job_id = n.id
      AND n.status IN ('completed', 'failed', 'cancelled');
    -- Reopened (a retry), or back in the queue (a reap, a retry backoff, a release at
    -- shutdown, a settled dependency): a claim (`pending` to `running`) and a promotion
    -- (`scheduled` to `pending`) change nothing here.
    INSERT INTO unfinished_jobs (user_id, job_id, queued_at)
    SELECT n.user_id, n.id, now()
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE (n.status IN ('waiting', 'pending', 'scheduled', 'running')
           AND o.status IN ('completed', 'failed', 'cancelled'))
       OR (n.status IN ('pending', 'scheduled') AND o.status IN ('waiting', 'running'))
    ON CONFLICT (user_id, job_id) DO UPDATE SET queued_at = EXCLUDED.queued_at;
    RETURN NULL;
END
$$;

CREATE FUNCTION unfinished_jobs_on_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    DELETE FROM unfinished_jobs u
    USING old_rows o
    WHERE u.user_id = o.user_id AND u.job_id = o.id
      AND o.status IN ('waiting', 'pending', 'scheduled', 'running');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_unfinished_on_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unfinished_jobs_on_insert();
CREATE TRIGGER jobs_unfinished_on_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unfinished_jobs_on_update();
CREATE TRIGGER jobs_unfinished_on_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unfinished_jobs_on_delete();
