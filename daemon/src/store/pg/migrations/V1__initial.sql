-- Tidemark's store on PostgreSQL, schema 1: the same records as the
-- embedded sled store. Records are kept as sled keeps them (a format byte,
-- then JSON) in `bytea`, since jsonb refuses the \u0000 that guest log text
-- may contain; the columns beside them are what queries select and order
-- by. Every name column is COLLATE "C" so lists come out in the byte order
-- the sled store's keys give.

CREATE SEQUENCE ids START 1;

CREATE TABLE tenants (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE tokens (
    tenant text COLLATE "C" NOT NULL,
    id bigint NOT NULL,
    hash text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX tokens_by_hash ON tokens (hash);

CREATE TABLE plugin_blobs (
    tenant text COLLATE "C" NOT NULL,
    digest text COLLATE "C" NOT NULL,
    wasm bytea NOT NULL,
    PRIMARY KEY (tenant, digest)
);

-- Versions are allocated by inserting the next number: the primary key
-- makes a concurrent push of the same number fail, and it tries again.
CREATE TABLE plugins (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    digest text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

CREATE TABLE workflows (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

CREATE TABLE cursors (
    tenant text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    start_ms bigint NOT NULL,
    PRIMARY KEY (tenant, workflow)
);

CREATE TABLE runs (
    tenant text COLLATE "C" NOT NULL,
    id bigint NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    window_start bigint NOT NULL,
    -- Event runs stand beside the schedule: not a window's run.
    event boolean NOT NULL,
    active boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX runs_active ON runs (tenant, id) WHERE active;
CREATE INDEX runs_by_window ON runs (tenant, workflow, window_start, id);
-- A window never has two active runs (the engine checks before it creates
-- one; this is the database refusing a bug).
CREATE UNIQUE INDEX runs_one_active_per_window ON runs (tenant, workflow, window_start)
    WHERE active AND NOT event;

-- The latest run of each window.
CREATE TABLE windows (
    tenant text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    start_ms bigint NOT NULL,
    run_id bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, workflow, start_ms)
);

CREATE TABLE attempts (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    task text COLLATE "C" NOT NULL,
    attempt bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, run_id, task, attempt)
);

CREATE TABLE idempotency (
    tenant text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    PRIMARY KEY (tenant, workflow, key)
);

CREATE TABLE checkpoints (
    tenant text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    task text COLLATE "C" NOT NULL,
    window_start bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant, workflow, task, window_start)
);

-- One row per dataset partition: its rows encoded as one value, sorted by
-- key (store::partitions), and the bytes it counts against the tenant's
-- quota (as the sled store counts them, so both agree).
CREATE TABLE dataset_partitions (
    tenant text COLLATE "C" NOT NULL,
    dataset text COLLATE "C" NOT NULL,
    partition bigint NOT NULL,
    data bytea NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (tenant, dataset, partition)
);

CREATE TABLE usage (
    tenant text COLLATE "C" PRIMARY KEY,
    dataset_bytes bigint NOT NULL
);

CREATE TABLE backfills (
    tenant text COLLATE "C" NOT NULL,
    id bigint NOT NULL,
    active boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE backfill_windows (
    tenant text COLLATE "C" NOT NULL,
    backfill bigint NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    window_start bigint NOT NULL,
    state text NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, backfill, workflow, window_start)
);

CREATE TABLE backfill_tile_widths (
    tenant text COLLATE "C" NOT NULL,
    backfill bigint NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    width bigint NOT NULL CHECK (width > 0),
    PRIMARY KEY (tenant, backfill, workflow)
);

CREATE TABLE backfill_tiles (
    tenant text COLLATE "C" NOT NULL,
    backfill bigint NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    tile_start bigint NOT NULL,
    running bigint NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    skipped bigint NOT NULL,
    cancelled bigint NOT NULL,
    PRIMARY KEY (tenant, backfill, workflow, tile_start)
);

CREATE TABLE connections (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    revision bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- `pending`: on the publisher's work list (not yet published, or its
-- declared check still to run).
CREATE TABLE outputs (
    tenant text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    connection text COLLATE "C" NOT NULL,
    task text COLLATE "C" NOT NULL,
    window_start bigint NOT NULL,
    run_id bigint NOT NULL,
    attempt bigint NOT NULL,
    pending boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, workflow, connection, task, window_start)
);
CREATE INDEX outputs_pending ON outputs (tenant, workflow, connection, task, window_start)
    WHERE pending;

CREATE TABLE staging (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    task text COLLATE "C" NOT NULL,
    attempt bigint NOT NULL,
    connection text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, run_id, task, attempt, connection)
);
