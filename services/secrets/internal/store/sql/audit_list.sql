-- Newest first; $3 is the id to continue below (0 = from the newest), $4 the page size plus one.
SELECT id, name, action, actor, actor_type, version, created_at
FROM secrets.audit
WHERE tenant = $1 AND ($2::text = '' OR name = $2::text) AND ($3::bigint = 0 OR id < $3::bigint)
ORDER BY id DESC
LIMIT $4
