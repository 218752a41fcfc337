-- The state of each tenant's Google setup (configured, partial or missing), recorded by the code path
-- that saves the setup (UpdateGoogleConfig) and by ResetGoogleProviders. The setup itself lives in the
-- secrets service, one tenant at a time; this table is what lets the tenant directory
-- (TenantDirectoryService.ListConfiguredTenants, for the maintenance scheduler) answer which tenants
-- have one without asking the secrets service about every tenant there is. It holds no value of the
-- setup, only its state.
CREATE TABLE tenant_setups (
    tenant     text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('configured', 'partial', 'missing')),
    updated_at timestamptz NOT NULL
);
CREATE INDEX tenant_setups_saved ON tenant_setups (tenant) WHERE state <> 'missing';

-- A tenant that saved its setup before this table existed has a settings row (every save writes one).
-- A migration cannot read the secrets service to compute its state, so it is recorded as partial — the
-- weakest claim of a saved setup — until its next save or reset records the real one.
INSERT INTO tenant_setups (tenant, state, updated_at)
SELECT tenant, 'partial', updated_at FROM settings
ON CONFLICT (tenant) DO NOTHING;
