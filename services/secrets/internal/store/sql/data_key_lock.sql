-- Rotation: lock one tenant's data key row for the re-wrap.
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = $1 FOR NO KEY UPDATE
