-- The fencing trigger of V3, checking the lease once per transaction
-- instead of at every statement. The first check's share lock on the lease
-- row is held until the transaction ends, so a takeover (which updates
-- that row) waits for the whole transaction either way: a later statement
-- of it cannot land after a new owner took over. Re-checking at each
-- statement only cost a lookup and a lock per statement of every persist.
-- The mark is set local to the transaction (and a rolled-back savepoint
-- takes it back with its lock), so the next transaction checks afresh.
CREATE OR REPLACE FUNCTION tidemark_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fence_owner text := current_setting('tidemark.fence_owner', true);
    fence_epoch text := current_setting('tidemark.fence_epoch', true);
    holder leases%ROWTYPE;
BEGIN
    IF fence_owner IS NULL OR fence_owner = '' THEN
        RETURN NULL;
    END IF;
    IF current_setting('tidemark.fence_checked', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM leases
     WHERE name = 'engine' AND owner = fence_owner
       AND epoch = fence_epoch::bigint AND expires_at > clock_timestamp()
       FOR SHARE;
    IF NOT FOUND THEN
        SELECT * INTO holder FROM leases WHERE name = 'engine';
        RAISE EXCEPTION 'node % no longer holds the engine lease of epoch % (%)',
            fence_owner, fence_epoch,
            CASE
                WHEN holder.name IS NULL THEN 'no node holds it'
                WHEN holder.owner = fence_owner AND holder.epoch = fence_epoch::bigint
                    THEN 'it lapsed ' || (clock_timestamp() - holder.expires_at)::text || ' ago'
                ELSE 'node ' || holder.owner || ' holds it with epoch ' || holder.epoch
            END
            USING ERRCODE = 'TMF01';
    END IF;
    PERFORM set_config('tidemark.fence_checked', 'on', true);
    RETURN NULL;
END
$$;
