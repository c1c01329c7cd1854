-- Lines written by job handlers (`GET /api/jobs/{id}/logs`). At most 1,000 per job: each batch
-- write deletes the oldest beyond that. Deleted with their job (retention included).
CREATE TABLE job_logs (
    id      bigint GENERATED ALWAYS AS IDENTITY,
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL,
    attempt integer NOT NULL,
    level   text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message text NOT NULL,
    -- One job's lines in the order written: the read, the trim and the cascade all use it.
    PRIMARY KEY (job_id, id)
);
