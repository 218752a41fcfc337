-- Serialize writers of one name; returns the current version and whether a value is stored.
SELECT version, ciphertext IS NOT NULL FROM secrets.secrets WHERE tenant = $1 AND name = $2 FOR UPDATE
