-- Accounts. Emails are stored normalized (trimmed, lower-case); the unique index on lower()
-- keeps uniqueness case-insensitive even for rows written by other tools.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    email_verified boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A sign-in session: the `sid` of its access tokens and the family of its refresh tokens.
CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_active_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored as SHA-256 hashes. A spent token keeps its successor sealed with a key
-- derived from the spent token itself, so only its holder can recover the session's current
-- token during the short race window of two tabs refreshing at once.
CREATE TABLE refresh_tokens (
    token_hash       bytea PRIMARY KEY,
    session_id       uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    spent_at         timestamptz,
    successor_sealed bytea
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Single-use email link tokens (verification and password reset), stored as SHA-256 hashes.
CREATE TABLE email_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);

-- The current six-digit verification code of a user, hashed, with its wrong-guess counter.
CREATE TABLE otp_codes (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash       bytea NOT NULL,
    failed_attempts integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
