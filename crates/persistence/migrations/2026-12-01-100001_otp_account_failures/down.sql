ALTER TABLE otp_codes DROP COLUMN account_failures, DROP COLUMN failures_since;
