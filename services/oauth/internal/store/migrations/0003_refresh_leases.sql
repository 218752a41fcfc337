-- A refresh of a connection's access token in flight on some replica. The request to Google's token
-- endpoint is made outside any transaction (no database connection is held while Google answers, so a
-- slow Google for one tenant holds nothing another tenant needs); the lease, taken and released under
-- the connection's row lock, keeps the other replicas from refreshing the same connection meanwhile.
-- A replica that dies mid-refresh leaves a lease that simply expires.
CREATE TABLE refresh_leases (
    connection_id uuid PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    holder        text NOT NULL,
    expires_at    timestamptz NOT NULL
);
