DROP INDEX jobs_by_status;
