-- The SQLite schema: forward migrations, applied in order; version N is the first N.
-- Each migration is one block; statements are separated by semicolons.

-- migration 1: instances, steps, attempts, events
CREATE TABLE instances (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow    TEXT NOT NULL,
    id          TEXT NOT NULL,
    params      TEXT NOT NULL,
    status      TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    created_at  REAL NOT NULL,
    started_at  REAL,
    ended_at    REAL,
    updated_at  REAL,
    wake_at     REAL,              -- set only while claimable: queued, due, or released mid-run
    owner       TEXT,              -- runner holding the lease
    lease_until REAL,
    gen         INTEGER NOT NULL DEFAULT 0,   -- bumped by terminate/restart/pause: fences old runs
    paused_at   REAL,
    trigger     TEXT,
    UNIQUE (workflow, id)
);
CREATE INDEX instances_due ON instances (wake_at) WHERE owner IS NULL AND wake_at IS NOT NULL;
CREATE INDEX instances_owned ON instances (owner) WHERE owner IS NOT NULL;
CREATE INDEX instances_by_created ON instances (created_at);
CREATE INDEX instances_by_id ON instances (id);
CREATE INDEX instances_by_status ON instances (workflow, status);
CREATE TABLE steps (
    instance    INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    n           INTEGER NOT NULL,
    status      TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    config      TEXT,
    started_at  REAL,
    ended_at    REAL,
    wake_at     REAL,
    event_type  TEXT,
    PRIMARY KEY (instance, pos)
) WITHOUT ROWID;
CREATE TABLE attempts (
    instance    INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  REAL,
    ended_at    REAL,
    error       TEXT,
    PRIMARY KEY (instance, pos, attempt)
) WITHOUT ROWID;
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    instance    INTEGER NOT NULL,
    type        TEXT NOT NULL,
    payload     TEXT,
    created_at  REAL NOT NULL,
    consumed_by INTEGER             -- pos of the waitForEvent step that took it
);
CREATE INDEX events_pending ON events (instance, seq) WHERE consumed_by IS NULL;

-- migration 2: the instance event log (what `wf tail` follows)
CREATE TABLE history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    instance    INTEGER NOT NULL,
    at          REAL NOT NULL,
    type        TEXT NOT NULL,
    step        TEXT,
    n           INTEGER,
    data        TEXT
);
CREATE INDEX history_by_instance ON history (instance, seq);

-- migration 3: the same table names as on PostgreSQL (one set of queries serves both), and runners
ALTER TABLE instances RENAME TO wf_instances;
ALTER TABLE steps RENAME TO wf_steps;
ALTER TABLE attempts RENAME TO wf_attempts;
ALTER TABLE events RENAME TO wf_events;
ALTER TABLE history RENAME TO wf_history;
ALTER TABLE meta RENAME TO wf_meta;
CREATE TABLE wf_runners (
    owner       TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    lease_until REAL NOT NULL
);

-- migration 4: cron schedules: the last tick fired of each (workflow, cron), shared by every runner
CREATE TABLE wf_crons (
    workflow    TEXT NOT NULL,
    cron        TEXT NOT NULL,
    last_tick   REAL NOT NULL,     -- seconds since the epoch, only ever moving forward
    updated_at  REAL NOT NULL,
    PRIMARY KEY (workflow, cron)
) WITHOUT ROWID;

-- migration 5: the traceback of each failed step attempt (the user's frames first, bounded in size)
ALTER TABLE wf_attempts ADD COLUMN traceback TEXT;

-- migration 6: waits on other instances (step.wait_for_instance), and the code each workflow was last checked against
CREATE TABLE wf_waits (
    waiter      INTEGER NOT NULL,   -- the instance that waits
    pos         INTEGER NOT NULL,   -- its waitForInstance step
    target      INTEGER NOT NULL,   -- the instance waited on: its end wakes the waiter
    PRIMARY KEY (waiter, pos)
) WITHOUT ROWID;
CREATE INDEX wf_waits_by_target ON wf_waits (target);
CREATE TABLE wf_code (
    workflow    TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,      -- a hash of the project's code: the replay check ran against it
    checked_at  REAL NOT NULL
) WITHOUT ROWID;

-- migration 7: retention: how long an ended instance is kept (seconds; NULL: its workflow's default)
ALTER TABLE wf_instances ADD COLUMN success_retention REAL;
ALTER TABLE wf_instances ADD COLUMN error_retention REAL;
CREATE INDEX wf_instances_ended ON wf_instances (workflow, ended_at) WHERE ended_at IS NOT NULL;

-- migration 8: terminate with rollback: the runner unwinds the instance's rollback handlers, then ends it terminated
ALTER TABLE wf_instances ADD COLUMN terminating INTEGER NOT NULL DEFAULT 0;
