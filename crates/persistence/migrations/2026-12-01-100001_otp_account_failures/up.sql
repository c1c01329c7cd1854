-- Wrong verification codes counted per account across codes: a resend replaces the code and
-- its own counter, but not these, so resending cannot buy more guesses.
ALTER TABLE otp_codes
    ADD COLUMN account_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN failures_since timestamptz NOT NULL DEFAULT now();
