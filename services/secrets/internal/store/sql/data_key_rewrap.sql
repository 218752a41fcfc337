UPDATE secrets.data_keys SET kek_id = $2, wrapped_key = $3, rotated_at = now() WHERE tenant = $1
