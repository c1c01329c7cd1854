-- Dependencies between jobs (issue 11): a job submitted with `depends_on` waits, in the new
-- status `waiting`, until its parents (earlier jobs of the same user) have completed.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('waiting', 'pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled'));

-- The parents of a job, in the order given: shown in the job object, read when the job is
-- settled and when its handler runs. Adding a column with a constant default rewrites nothing.
ALTER TABLE jobs ADD COLUMN depends_on uuid[] NOT NULL DEFAULT '{}';

-- The same edges from the parent's side: when a parent finishes, its children are one index
-- probe away. Deleting either job (retention, a deleted user) removes the edge.
CREATE TABLE job_dependencies (
    parent_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    job_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, job_id)
);
-- For the foreign key's ON DELETE from the child's side.
CREATE INDEX job_dependencies_by_job ON job_dependencies (job_id);

-- The reconciler's pass over waiting jobs (settles missed after a crash): only waiting rows.
CREATE INDEX jobs_waiting ON jobs (id) WHERE status = 'waiting';
