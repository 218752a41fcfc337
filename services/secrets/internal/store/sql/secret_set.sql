UPDATE secrets.secrets
SET version = $3, nonce = $4, ciphertext = $5, updated_at = now(), updated_by = $6
WHERE tenant = $1 AND name = $2
RETURNING updated_at
