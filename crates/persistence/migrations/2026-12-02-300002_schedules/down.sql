DROP INDEX jobs_schedule_run;
ALTER TABLE jobs
    DROP CONSTRAINT jobs_schedule_run_complete,
    DROP COLUMN schedule_due_at,
    DROP COLUMN schedule_id;
DROP TABLE schedules;
