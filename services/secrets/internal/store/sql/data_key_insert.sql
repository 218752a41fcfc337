-- A new tenant's first data key; a concurrent first write of the same tenant wins and this does nothing.
INSERT INTO secrets.data_keys (tenant, kek_id, wrapped_key) VALUES ($1, $2, $3)
ON CONFLICT (tenant) DO NOTHING
