DROP INDEX jobs_waiting;
DROP TABLE job_dependencies;
ALTER TABLE jobs DROP COLUMN depends_on;
UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'waiting';
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled'));
