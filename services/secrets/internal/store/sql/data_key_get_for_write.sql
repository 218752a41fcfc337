-- The tenant's wrapped data key, locked against a concurrent shred (DELETE) but not against a KEK
-- rotation (which only updates non-key columns), so writers never block rotation.
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = $1 FOR KEY SHARE
