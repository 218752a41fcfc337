-- Named queries of the oauth schema. Each starts with "-- name: Name"; store.go calls them by name with
-- named parameters. Every table is schema-qualified and every query is scoped by tenant, except: consuming
-- a state (its hash is the only thing the callback knows; the tenant then comes from the consumed row),
-- ListConfiguredTenants (the tenant directory: the one cross-tenant read, for service identities acting
-- for no tenant — see directory.go), and the test helpers at the end.

-- name: GetSettings
SELECT tenant, use_same_app, updated_by, updated_at FROM oauth.settings WHERE tenant = @tenant;

-- name: UpsertSettings
INSERT INTO oauth.settings (tenant, use_same_app, updated_by, updated_at)
VALUES (@tenant, @use_same_app, @updated_by, @updated_at)
ON CONFLICT (tenant) DO UPDATE SET use_same_app = EXCLUDED.use_same_app,
    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
RETURNING tenant, use_same_app, updated_by, updated_at;

-- name: InsertAudit
INSERT INTO oauth.config_audit (tenant, actor, action, fields, created_at)
VALUES (@tenant, @actor, @action, @fields, @created_at);

-- name: ListAudit
SELECT actor, action, fields, created_at FROM oauth.config_audit WHERE tenant = @tenant ORDER BY id DESC LIMIT @limit;

-- name: InsertState
INSERT INTO oauth.auth_states (state_hash, tenant, user_id, provider_id, kind, client_id, login_hint,
    sealed_verifier, binding_hash, created_at, expires_at)
VALUES (@state_hash, @tenant, @user_id, @provider_id, @kind, @client_id, @login_hint,
    @sealed_verifier, @binding_hash, @created_at, @expires_at);

-- name: ConsumeState
DELETE FROM oauth.auth_states WHERE state_hash = @state_hash
RETURNING state_hash, tenant, user_id, provider_id, kind, client_id, login_hint, sealed_verifier,
    binding_hash, created_at, expires_at;

-- name: ConsumeBoundState
-- Consumes a state only together with its browser binding: a callback without the binding cookie (or
-- with another browser's) consumes nothing, so the state stays usable by the browser that began it.
DELETE FROM oauth.auth_states WHERE state_hash = @state_hash AND binding_hash = @binding_hash
RETURNING state_hash, tenant, user_id, provider_id, kind, client_id, login_hint, sealed_verifier,
    binding_hash, created_at, expires_at;

-- name: StateExists
SELECT EXISTS (SELECT 1 FROM oauth.auth_states WHERE state_hash = @state_hash);

-- name: PurgeExpiredStates
DELETE FROM oauth.auth_states WHERE expires_at < @cutoff;

-- name: GetConnection
SELECT * FROM oauth.connections WHERE tenant = @tenant AND kind = @kind AND provider_id = @provider_id;

-- name: SetLockTimeout
-- For the rest of the transaction: how long a statement waits for a row lock (SET LOCAL lock_timeout).
SELECT set_config('lock_timeout', @timeout, true);

-- name: LockGrant
-- Until the end of the transaction: the one callback storing a grant for this provider (a transaction
-- advisory lock, so it also covers a provider that has no connection row yet to lock).
SELECT pg_advisory_xact_lock(hashtextextended('oauth.grant:' || @tenant || '/' || @kind || '/' || @provider_id, 0));

-- name: GetConnectionForUpdate
SELECT * FROM oauth.connections WHERE tenant = @tenant AND kind = @kind AND provider_id = @provider_id FOR UPDATE;

-- name: GetConnectionByID
SELECT * FROM oauth.connections WHERE tenant = @tenant AND id = @id;

-- name: ListConnections
SELECT * FROM oauth.connections WHERE tenant = @tenant AND (@kind = '' OR kind = @kind) ORDER BY kind, provider_id;

-- name: UpsertConnection
INSERT INTO oauth.connections (id, tenant, kind, provider_id, user_id, account_email, client_id, scopes,
    status, status_message, remedy, access_token_expires_at, last_refresh_at, consented_at, connected_at, updated_at)
VALUES (@id, @tenant, @kind, @provider_id, @user_id, @account_email, @client_id, @scopes,
    'connected', '', '', @access_token_expires_at, NULL, @now, @now, @now)
ON CONFLICT (tenant, kind, provider_id) DO UPDATE SET
    user_id = EXCLUDED.user_id, account_email = EXCLUDED.account_email, client_id = EXCLUDED.client_id,
    scopes = EXCLUDED.scopes, status = 'connected', status_message = '', remedy = '',
    access_token_expires_at = EXCLUDED.access_token_expires_at, last_refresh_at = NULL,
    consented_at = EXCLUDED.consented_at, connected_at = EXCLUDED.connected_at, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: MarkRefreshed
UPDATE oauth.connections SET status = 'connected', status_message = '', remedy = '',
    access_token_expires_at = @expiry, last_refresh_at = @now, updated_at = @now
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: MarkFailed
UPDATE oauth.connections SET status = @status, status_message = @message, remedy = @remedy, updated_at = @now
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: GetRefreshLease
-- Under the connection's row lock (as TakeRefreshLease): the refresh in flight, if any.
SELECT holder, expires_at FROM oauth.refresh_leases WHERE connection_id = @connection_id;

-- name: TakeRefreshLease
INSERT INTO oauth.refresh_leases (connection_id, holder, expires_at) VALUES (@connection_id, @holder, @expires_at)
ON CONFLICT (connection_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at;

-- name: ReleaseRefreshLease
DELETE FROM oauth.refresh_leases WHERE connection_id = @connection_id AND holder = @holder;

-- name: DeleteConnection
DELETE FROM oauth.connections WHERE tenant = @tenant AND id = @id;

-- name: DeleteTenantConnections
DELETE FROM oauth.connections WHERE tenant = @tenant RETURNING id;

-- name: InsertEvent
INSERT INTO oauth.connection_events (connection_id, tenant, type, message, created_at)
VALUES (@connection_id, @tenant, @type, @message, @created_at);

-- name: ListEvents
SELECT type, message, created_at FROM oauth.connection_events
WHERE tenant = @tenant AND connection_id = @connection_id ORDER BY id DESC LIMIT @limit;

-- name: UpsertTenantSetup
INSERT INTO oauth.tenant_setups (tenant, state, updated_at) VALUES (@tenant, @state, @updated_at)
ON CONFLICT (tenant) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at;

-- name: ReconcileTenantSetup
-- Records a state read back from the setup only when it differs from the recorded one (a tenant without
-- a row gets one only when something of a setup is there).
INSERT INTO oauth.tenant_setups (tenant, state, updated_at)
SELECT @tenant::text, @state::text, @updated_at::timestamptz
WHERE @state::text <> 'missing' OR EXISTS (SELECT 1 FROM oauth.tenant_setups WHERE tenant = @tenant::text)
ON CONFLICT (tenant) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
WHERE oauth.tenant_setups.state <> EXCLUDED.state;

-- name: ListConfiguredTenants
-- Not scoped by tenant: the tenant directory lists every tenant whose setup is saved.
SELECT tenant, updated_at FROM oauth.tenant_setups WHERE state <> 'missing' ORDER BY tenant;

-- Test helpers (package oauthtesting): other modules' tests arrange oauth's state through these instead
-- of writing its tables. They address a row by what the test knows, so they are not scoped by tenant.

-- name: TestExpireAccessToken
UPDATE oauth.connections SET access_token_expires_at = now() - interval '1 minute' WHERE id = @id;

-- name: TestAgeConsent
UPDATE oauth.connections SET consented_at = consented_at - @by::interval, connected_at = connected_at - @by::interval
WHERE account_email = @account_email;

-- name: TestExpireAuthStates
UPDATE oauth.auth_states SET expires_at = now() - interval '1 second' WHERE provider_id = @provider_id;

-- name: TestAgeTenant
-- Every recorded time of the tenant's connections and their timelines, moved back by @by: as if all of
-- it had happened that long ago (the access token's recorded expiry included).
WITH conns AS (
    UPDATE oauth.connections SET
        consented_at = consented_at - @by::interval, connected_at = connected_at - @by::interval,
        last_refresh_at = last_refresh_at - @by::interval,
        access_token_expires_at = access_token_expires_at - @by::interval,
        updated_at = updated_at - @by::interval
    WHERE tenant = @tenant
    RETURNING id
), events AS (
    UPDATE oauth.connection_events SET created_at = created_at - @by::interval WHERE tenant = @tenant
)
SELECT count(*) FROM conns;
