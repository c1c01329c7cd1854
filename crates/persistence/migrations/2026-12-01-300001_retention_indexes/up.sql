-- Retention (persistence::retention) deletes expired sessions and tokens in small batches;
-- these indexes find them without scanning the tables. The columns never change after insert,
-- so the indexes cost no HOT updates.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX email_tokens_by_expiry ON email_tokens (expires_at);
