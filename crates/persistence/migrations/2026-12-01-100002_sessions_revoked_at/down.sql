DROP INDEX sessions_by_revoked_at;
