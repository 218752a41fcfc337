-- The statements of every lease table. {table} is the schema-qualified table Table is bound to (its
-- columns: provider_id uuid PRIMARY KEY REFERENCES the service's providers ON DELETE CASCADE, tenant,
-- holder, expire_time); lease.New substitutes it.

-- name: Acquire
-- Returns a row when @holder now holds the lease (free, expired, or already its own), for @ttl_seconds.
INSERT INTO {table} AS l (provider_id, tenant, holder, expire_time)
VALUES (@provider_id, @tenant, @holder, now() + make_interval(secs => @ttl_seconds))
ON CONFLICT (provider_id) DO UPDATE SET holder = EXCLUDED.holder, tenant = EXCLUDED.tenant, expire_time = EXCLUDED.expire_time
WHERE l.expire_time < now() OR l.holder = EXCLUDED.holder
RETURNING holder;

-- name: Held
-- Whether someone holds the lease now (a live holder renews it before it expires).
SELECT EXISTS (SELECT 1 FROM {table} WHERE tenant = @tenant AND provider_id = @provider_id AND expire_time > now());

-- name: Release
DELETE FROM {table} WHERE tenant = @tenant AND provider_id = @provider_id AND holder = @holder;
