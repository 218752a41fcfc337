-- Stored values of a tenant: every one when $2 is NULL, else the named ones.
SELECT name, version, nonce, ciphertext, updated_at
FROM secrets.secrets
WHERE tenant = $1 AND ciphertext IS NOT NULL AND ($2::text[] IS NULL OR name = ANY ($2::text[]))
ORDER BY name
