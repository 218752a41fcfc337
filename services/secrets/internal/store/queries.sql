-- The query layer of the secrets schema: every statement the store runs, called only through the typed
-- functions in store.go. CheckQueries (TestEveryQueryPrepares) prepares each one against the migrated schema.

-- name: DataKeyGet
-- The tenant's wrapped data key (readers).
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = @tenant

-- name: DataKeyGetForWrite
-- The tenant's wrapped data key, locked against a concurrent shred (DELETE) but not against a KEK
-- rotation (which only updates non-key columns), so writers never block rotation.
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = @tenant FOR KEY SHARE

-- name: DataKeyLock
-- Rotation: lock one tenant's data key row for the re-wrap.
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = @tenant FOR NO KEY UPDATE

-- name: DataKeyInsert
-- A new tenant's first data key; a concurrent first write of the same tenant wins and this does nothing.
INSERT INTO secrets.data_keys (tenant, kek_id, wrapped_key) VALUES (@tenant, @kek_id, @wrapped_key)
ON CONFLICT (tenant) DO NOTHING

-- name: DataKeyRewrap
UPDATE secrets.data_keys SET kek_id = @kek_id, wrapped_key = @wrapped_key, rotated_at = now() WHERE tenant = @tenant

-- name: DataKeyDelete
-- Crypto-shred: without this row no ciphertext of the tenant can be opened again.
DELETE FROM secrets.data_keys WHERE tenant = @tenant

-- name: DataKeyTenants
-- Every tenant with a data key, for rotation.
SELECT tenant FROM secrets.data_keys ORDER BY tenant

-- name: DataKeyKEKIDs
-- Which KEK ids wrap data keys, and how many each (startup check, rotation progress).
SELECT kek_id, count(*) FROM secrets.data_keys GROUP BY kek_id ORDER BY kek_id

-- name: SecretPlaceholder
-- Make sure a row exists to lock: a new name starts as a version-0 tombstone inside the writing transaction.
INSERT INTO secrets.secrets (tenant, name, version, updated_by) VALUES (@tenant, @name, 0, @actor)
ON CONFLICT (tenant, name) DO NOTHING

-- name: SecretLock
-- Serialize writers of one name; returns the current version and whether a value is stored.
SELECT version, ciphertext IS NOT NULL FROM secrets.secrets WHERE tenant = @tenant AND name = @name FOR UPDATE

-- name: SecretSet
UPDATE secrets.secrets
SET version = @version, nonce = @nonce, ciphertext = @ciphertext, updated_at = now(), updated_by = @actor
WHERE tenant = @tenant AND name = @name
RETURNING updated_at

-- name: SecretTombstone
-- Delete keeps a tombstone so the next write continues the version sequence.
UPDATE secrets.secrets
SET nonce = NULL, ciphertext = NULL, updated_at = now(), updated_by = @actor
WHERE tenant = @tenant AND name = @name AND ciphertext IS NOT NULL
RETURNING version

-- name: SecretsList
-- Stored values of a tenant: every one when @names is NULL, else the named ones.
SELECT name, version, nonce, ciphertext, updated_at
FROM secrets.secrets
WHERE tenant = @tenant AND ciphertext IS NOT NULL AND (@names::text[] IS NULL OR name = ANY (@names::text[]))
ORDER BY name

-- name: SecretsDeleteTenant
DELETE FROM secrets.secrets WHERE tenant = @tenant

-- name: AuditInsert
INSERT INTO secrets.audit (tenant, name, action, actor, actor_type, version)
VALUES (@tenant, @name, @action, @actor, @actor_type, @version)

-- name: AuditList
-- Newest first; @before_id is the id to continue below (0 = from the newest), @limit the page size plus one.
SELECT id, name, action, actor, actor_type, version, created_at
FROM secrets.audit
WHERE tenant = @tenant AND (@name::text = '' OR name = @name::text) AND (@before_id::bigint = 0 OR id < @before_id::bigint)
ORDER BY id DESC
LIMIT @limit
