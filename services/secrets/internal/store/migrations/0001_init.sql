-- The secret store. No column holds a plaintext value or any part of one: values and their hints live
-- only inside AES-256-GCM ciphertexts made with the tenant's data key.

-- One random data key per tenant, wrapped (AES-256-GCM, AAD = tenant + kek_id) by the key-encryption key
-- whose id is recorded beside it. Deleting a tenant's row crypto-shreds every ciphertext of the tenant.
CREATE TABLE data_keys (
    tenant      text PRIMARY KEY,
    kek_id      text NOT NULL,
    wrapped_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

-- One row per (tenant, name). A deleted secret keeps its row as a tombstone (no ciphertext) so versions
-- keep increasing across delete and re-create; the value's AAD binds it to (tenant, name, version).
CREATE TABLE secrets (
    tenant     text NOT NULL,
    name       text NOT NULL,
    version    bigint NOT NULL,
    nonce      bytea,
    ciphertext bytea,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant, name),
    CONSTRAINT secrets_value_complete CHECK ((nonce IS NULL) = (ciphertext IS NULL))
);

-- Who wrote, read or deleted which secret when. Never values.
CREATE TABLE audit (
    id         bigserial PRIMARY KEY,
    tenant     text NOT NULL,
    name       text NOT NULL DEFAULT '',
    action     text NOT NULL CHECK (action IN ('put', 'get', 'delete', 'rotate', 'shred')),
    actor      text NOT NULL,
    actor_type text NOT NULL,
    version    bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_tenant_id ON audit (tenant, id DESC);
CREATE INDEX audit_tenant_name_id ON audit (tenant, name, id DESC);
