-- Delete keeps a tombstone so the next write continues the version sequence.
UPDATE secrets.secrets
SET nonce = NULL, ciphertext = NULL, updated_at = now(), updated_by = $3
WHERE tenant = $1 AND name = $2 AND ciphertext IS NOT NULL
RETURNING version
