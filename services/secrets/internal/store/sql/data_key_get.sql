-- The tenant's wrapped data key (readers).
SELECT kek_id, wrapped_key FROM secrets.data_keys WHERE tenant = $1
