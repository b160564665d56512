-- Several daemons on one database (issue #19): the nodes that share it,
-- the leases that decide which of them drives the engine, and fencing.

CREATE TABLE nodes (
    id           text PRIMARY KEY,
    -- The address other nodes forward API requests to.
    addr         text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    draining     boolean NOT NULL DEFAULT false,
    -- Attempts the node was running at its last heartbeat.
    attempts     integer NOT NULL DEFAULT 0
);

-- One row per singleton duty. `epoch` grows by one at every change of
-- owner: it is the fencing token every write of the owner is checked
-- against. Times are the database's clock, never a node's.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Fencing. A session that has set `tidemark.fence_owner` and
-- `tidemark.fence_epoch` (a leader's pool sets them on every connection)
-- may write only while that owner holds the engine lease with that epoch,
-- checked at every statement against the newest committed lease. The
-- check takes a share lock on the lease row, so a takeover waits for the
-- owner's transactions in flight and none of them commits after it.
-- Sessions without the settings (a single daemon, tools, tests) are not
-- fenced.
CREATE FUNCTION tidemark_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fence_owner text := current_setting('tidemark.fence_owner', true);
    fence_epoch text := current_setting('tidemark.fence_epoch', true);
BEGIN
    IF fence_owner IS NULL OR fence_owner = '' THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM leases
     WHERE name = 'engine' AND owner = fence_owner
       AND epoch = fence_epoch::bigint AND expires_at > clock_timestamp()
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % no longer holds the engine lease of epoch %',
            fence_owner, fence_epoch USING ERRCODE = 'TMF01';
    END IF;
    RETURN NULL;
END
$$;

-- Every table of engine state is fenced; the cluster's own tables and the
-- migration history are not. A test checks that no table is left out.
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables
              WHERE schemaname = current_schema()
                AND tablename NOT IN ('nodes', 'leases', 'refinery_schema_history')
    LOOP
        EXECUTE format(
            'CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION tidemark_fence()', t);
    END LOOP;
END
$$;
