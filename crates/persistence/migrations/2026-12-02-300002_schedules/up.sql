-- Periodic jobs (`/api/schedules`). `next_run_at` is the next due time, NULL while paused.
CREATE TABLE schedules (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}',
    priority     smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 25),
    paused       boolean NOT NULL DEFAULT false,
    next_run_at  timestamptz,
    last_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT paused OR next_run_at IS NULL)
);
-- What the workers fire (due first) and how long they may sleep: active schedules only.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
-- A user's schedules, newest first (ids are UUID v7: they sort by creation time); an admin's
-- list of everyone's uses the primary key.
CREATE INDEX schedules_by_user ON schedules (user_id, id DESC);

-- The jobs a schedule creates: which schedule, and for which due time. The unique index makes
-- "one job per due time" a fact of the record, whatever number of workers fire schedules.
-- No foreign key: a job keeps the id of a schedule deleted since (its provenance).
ALTER TABLE jobs
    ADD COLUMN schedule_id uuid,
    ADD COLUMN schedule_due_at timestamptz,
    ADD CONSTRAINT jobs_schedule_run_complete CHECK ((schedule_id IS NULL) = (schedule_due_at IS NULL));
CREATE UNIQUE INDEX jobs_schedule_run ON jobs (schedule_id, schedule_due_at)
    WHERE schedule_id IS NOT NULL;
