-- An admin's page of one status across every user (`/api/jobs/admin/all?status=failed`):
-- without it, PostgreSQL walks `jobs_by_created` and filters, reading the whole table when
-- the status is rare.
CREATE INDEX jobs_by_status ON jobs (status, created_at DESC, id DESC);
