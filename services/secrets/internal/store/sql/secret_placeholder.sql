-- Make sure a row exists to lock: a new name starts as a version-0 tombstone inside the writing transaction.
INSERT INTO secrets.secrets (tenant, name, version, updated_by) VALUES ($1, $2, 0, $3)
ON CONFLICT (tenant, name) DO NOTHING
