-- A provider's River sync job holds this lease for its whole run and renews it while it works (a
-- heartbeat): a sync job still "running" whose lease has lapsed is a dead replica's (kill -9), which the
-- sweeper ends and replaces instead of waiting for River's rescue.
CREATE TABLE sync_leases (
    provider_id  uuid PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    tenant       text NOT NULL,
    holder       text NOT NULL,
    expire_time  timestamptz NOT NULL
);
