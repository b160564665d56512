-- Notification targets (the signing secret stays in its connection) and
-- the delivery log. Both are fenced like every table of engine state.
CREATE TABLE notify_targets (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE deliveries (
    tenant text COLLATE "C" NOT NULL,
    id bigint NOT NULL,
    pending boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX deliveries_pending ON deliveries (id) WHERE pending;

CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON notify_targets
    FOR EACH STATEMENT EXECUTE FUNCTION tidemark_fence();
CREATE TRIGGER fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION tidemark_fence();
