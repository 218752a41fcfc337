-- Named statements of the maintenance schema (see platform/pg.Queries). Every statement filters by tenant;
-- every table is schema-qualified (the search_path is not relied on).

-- name: InsertRun
-- A retried record (an activity retry, a River job retry) finds its run already there: nothing changes.
INSERT INTO maintenance.runs (id, tenant, runner, trigger, status, start_time, end_time, error_code, message,
                  provider_count, due_count, failed_count, google_calls)
VALUES (@id, @tenant, @runner, @trigger, @status, @start_time, @end_time, @error_code, @message,
        @provider_count, @due_count, @failed_count, @google_calls)
ON CONFLICT (id) DO NOTHING

-- name: InsertRunProviders
INSERT INTO maintenance.run_providers (run_id, position, tenant, kind, provider_id, name, due)
SELECT @run_id, p.position, @tenant, p.kind, p.provider_id, p.name, p.due
FROM unnest(@positions::int[], @kinds::text[], @provider_ids::text[], @names::text[], @dues::boolean[])
     AS p(position, kind, provider_id, name, due)

-- name: InsertRunSteps
INSERT INTO maintenance.run_steps (run_id, position, seq, tenant, step, status, failure_class, error_code, message,
                       remedy, reason, google_calls, expire_time)
SELECT @run_id, s.position, s.seq, @tenant, s.step, s.status, s.failure_class, s.error_code, s.message,
       s.remedy, s.reason, s.google_calls, s.expire_time
FROM unnest(@positions::int[], @seqs::int[], @steps::text[], @statuses::text[], @failure_classes::text[],
            @error_codes::text[], @messages::text[], @remedies::text[], @reasons::text[], @google_calls::int[],
            @expire_times::timestamptz[])
     AS s(position, seq, step, status, failure_class, error_code, message, remedy, reason, google_calls, expire_time)

-- name: PruneRuns
-- Keeps the newest @keep runs of the tenant.
DELETE FROM maintenance.runs
WHERE tenant = @tenant
  AND id IN (SELECT id FROM maintenance.runs WHERE tenant = @tenant ORDER BY start_time DESC, id OFFSET @keep)

-- name: ListRuns
SELECT id, runner, trigger, start_time, end_time, error_code, message
FROM maintenance.runs
WHERE tenant = @tenant
ORDER BY start_time DESC, id
LIMIT @limit

-- name: GetRun
SELECT id, runner, trigger, start_time, end_time, error_code, message
FROM maintenance.runs
WHERE tenant = @tenant AND id = @id

-- name: ListRunProviders
SELECT run_id, position, kind, provider_id, name, due
FROM maintenance.run_providers
WHERE tenant = @tenant AND run_id = ANY(@run_ids::uuid[])
ORDER BY run_id, position

-- name: ListRunSteps
SELECT run_id, position, step, status, failure_class, error_code, message, remedy, reason, google_calls, expire_time
FROM maintenance.run_steps
WHERE tenant = @tenant AND run_id = ANY(@run_ids::uuid[])
ORDER BY run_id, position, seq

-- name: LastScheduledRunStart
SELECT max(start_time) FROM maintenance.runs WHERE tenant = @tenant AND trigger = 'schedule'

-- name: TakeLease
-- Takes the tenant's run lease when it is free or expired; returns the holder when taken.
INSERT INTO maintenance.tenant_leases (tenant, holder, expire_time)
VALUES (@tenant, @holder, now() + @ttl::interval)
ON CONFLICT (tenant) DO UPDATE SET holder = EXCLUDED.holder, expire_time = EXCLUDED.expire_time
WHERE maintenance.tenant_leases.expire_time < now()
RETURNING holder

-- name: ReleaseLease
DELETE FROM maintenance.tenant_leases WHERE tenant = @tenant AND holder = @holder
