-- Named queries of the oauth schema. Each starts with "-- name: Name"; store.go loads them by name.
-- Every table is schema-qualified and every query is scoped by tenant (except consuming a state, whose
-- hash is the only thing the callback knows; the tenant then comes from the consumed row).

-- name: GetSettings
SELECT tenant, use_same_app, updated_by, updated_at FROM oauth.settings WHERE tenant = $1;

-- name: UpsertSettings
INSERT INTO oauth.settings (tenant, use_same_app, updated_by, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant) DO UPDATE SET use_same_app = EXCLUDED.use_same_app,
    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
RETURNING tenant, use_same_app, updated_by, updated_at;

-- name: InsertAudit
INSERT INTO oauth.config_audit (tenant, actor, action, fields, created_at) VALUES ($1, $2, $3, $4, $5);

-- name: ListAudit
SELECT actor, action, fields, created_at FROM oauth.config_audit WHERE tenant = $1 ORDER BY id DESC LIMIT $2;

-- name: InsertState
INSERT INTO oauth.auth_states (state_hash, tenant, user_id, provider_id, kind, client_id, login_hint,
    sealed_verifier, binding_hash, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: ConsumeState
DELETE FROM oauth.auth_states WHERE state_hash = $1
RETURNING state_hash, tenant, user_id, provider_id, kind, client_id, login_hint, sealed_verifier,
    binding_hash, created_at, expires_at;

-- name: PurgeExpiredStates
DELETE FROM oauth.auth_states WHERE expires_at < $1;

-- name: GetConnection
SELECT * FROM oauth.connections WHERE tenant = $1 AND kind = $2 AND provider_id = $3;

-- name: GetConnectionForUpdate
SELECT * FROM oauth.connections WHERE tenant = $1 AND kind = $2 AND provider_id = $3 FOR UPDATE;

-- name: ListConnections
SELECT * FROM oauth.connections WHERE tenant = $1 AND ($2 = '' OR kind = $2) ORDER BY kind, provider_id;

-- name: UpsertConnection
INSERT INTO oauth.connections (id, tenant, kind, provider_id, user_id, account_email, client_id, scopes,
    status, status_message, remedy, access_token_expires_at, last_refresh_at, consented_at, connected_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'connected', '', '', $9, NULL, $10, $10, $10)
ON CONFLICT (tenant, kind, provider_id) DO UPDATE SET
    user_id = EXCLUDED.user_id, account_email = EXCLUDED.account_email, client_id = EXCLUDED.client_id,
    scopes = EXCLUDED.scopes, status = 'connected', status_message = '', remedy = '',
    access_token_expires_at = EXCLUDED.access_token_expires_at, last_refresh_at = NULL,
    consented_at = EXCLUDED.consented_at, connected_at = EXCLUDED.connected_at, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: MarkRefreshed
UPDATE oauth.connections SET status = 'connected', status_message = '', remedy = '',
    access_token_expires_at = $3, last_refresh_at = $4, updated_at = $4
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: MarkFailed
UPDATE oauth.connections SET status = $3, status_message = $4, remedy = $5, updated_at = $6
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: DeleteConnection
DELETE FROM oauth.connections WHERE tenant = $1 AND id = $2;

-- name: DeleteTenantConnections
DELETE FROM oauth.connections WHERE tenant = $1 RETURNING id;

-- name: InsertEvent
INSERT INTO oauth.connection_events (connection_id, tenant, type, message, created_at) VALUES ($1, $2, $3, $4, $5);

-- name: ListEvents
SELECT type, message, created_at FROM oauth.connection_events
WHERE tenant = $1 AND connection_id = $2 ORDER BY id DESC LIMIT $3;
