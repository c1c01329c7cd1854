DROP INDEX email_tokens_by_expiry;
DROP INDEX refresh_tokens_by_expiry;
DROP INDEX sessions_by_expiry;
