-- The fencing trigger of V2, saying who holds the engine lease when it
-- refuses a write: an operator (and a test) can tell a lapsed lease from
-- one another node took.
CREATE OR REPLACE FUNCTION tidemark_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fence_owner text := current_setting('tidemark.fence_owner', true);
    fence_epoch text := current_setting('tidemark.fence_epoch', true);
    holder leases%ROWTYPE;
BEGIN
    IF fence_owner IS NULL OR fence_owner = '' THEN
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
    RETURN NULL;
END
$$;
