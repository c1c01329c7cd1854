-- Which job types are paused (POST /api/jobs/admin/pause and /resume): one row, so that a
-- change and its version are read and written together. `version` grows with every change; the
-- workers' Redis mirror of the paused types carries it, so that an older state never overwrites
-- a newer one there.
CREATE TABLE queue_pause (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    paused_types text[] NOT NULL DEFAULT '{}',
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid REFERENCES users (id) ON DELETE SET NULL
);

INSERT INTO queue_pause (id) VALUES (1);
