INSERT INTO secrets.audit (tenant, name, action, actor, actor_type, version) VALUES ($1, $2, $3, $4, $5, $6)
