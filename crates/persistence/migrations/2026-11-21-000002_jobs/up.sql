-- Jobs: PostgreSQL is the record of every job; Redis only indexes them for dispatch.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type            text NOT NULL,
    data            jsonb NOT NULL DEFAULT '{}',
    priority        smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    status          text NOT NULL
                    CHECK (status IN ('pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 25),
    progress        smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    result          jsonb,
    last_error      text,
    run_at          timestamptz,
    idempotency_key text,
    -- Fencing token: incremented by every claim and never reset (unlike `attempts`, which the
    -- retry route zeroes), so a stale attempt's write can never match a newer attempt's row.
    fence           bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

-- Race-safe idempotency: concurrent submits with one key insert one row.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Keyset pagination, newest first: a user's jobs, a user's jobs in one status, everyone's.
CREATE INDEX jobs_by_user ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_by_user_status ON jobs (user_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id DESC);

-- The reconciler's scans: queued jobs and running jobs only (small partial indexes).
CREATE INDEX jobs_queued ON jobs (id) WHERE status IN ('pending', 'scheduled');
CREATE INDEX jobs_running ON jobs (id) WHERE status = 'running';
