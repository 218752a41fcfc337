-- Named queries of the calendar schema. Each starts with "-- name: Name"; store.go loads them by name and
-- passes their named parameters (@tenant, …) as pg.Args.
-- Every table is schema-qualified; every query is scoped by tenant except the channel lookup of an
-- incoming notification, whose tenant comes from the channel row (and is then proven by the token).

-- name: CreateProvider
INSERT INTO calendar.providers (tenant, user_id, calendar_id, display_name, sync_direction)
VALUES (@tenant, @user_id, @calendar_id, @display_name, @sync_direction)
RETURNING *;

-- name: GetProvider
SELECT * FROM calendar.providers WHERE tenant = @tenant AND id = @id;

-- name: GetProviderForUpdate
SELECT * FROM calendar.providers WHERE tenant = @tenant AND id = @id FOR UPDATE;

-- name: ListProviders
-- Only @user_id's providers unless it is empty.
SELECT * FROM calendar.providers
WHERE tenant = @tenant AND (@user_id = '' OR user_id = @user_id)
ORDER BY create_time, id;

-- name: UpdateProvider
-- NULL display name or calendar id and a sync direction of 0 keep the current value.
UPDATE calendar.providers SET
    display_name   = COALESCE(@display_name, display_name),
    calendar_id    = COALESCE(@calendar_id, calendar_id),
    sync_direction = CASE WHEN @sync_direction::smallint > 0 THEN @sync_direction::smallint ELSE sync_direction END,
    update_time    = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: DeleteProvider
DELETE FROM calendar.providers WHERE tenant = @tenant AND id = @id;

-- name: SetState
UPDATE calendar.providers SET
    state = @state, error_code = @error_code, error_message = @error_message, error_remedy = @error_remedy,
    update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: SetConnected
UPDATE calendar.providers SET
    state = 'connected', error_code = '', error_message = '', error_remedy = '',
    account_email = @account_email, available_calendars = @available_calendars, connect_time = now(),
    update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: ClearSyncState
UPDATE calendar.providers SET
    state = 'disconnected', error_code = '', error_message = '', error_remedy = '',
    sync_token = '', synced_seq = notify_seq, generation = generation + 1, connect_time = NULL,
    update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: DeleteEvents
DELETE FROM calendar.events WHERE tenant = @tenant AND provider_id = @provider_id;

-- name: BumpNotify
UPDATE calendar.providers SET notify_seq = notify_seq + 1
WHERE tenant = @tenant AND id = @id
RETURNING notify_seq;

-- name: SaveSync
UPDATE calendar.providers SET
    sync_token = @sync_token, synced_seq = GREATEST(synced_seq, @covered_seq), last_sync_time = now(),
    update_time = now()
WHERE tenant = @tenant AND id = @id;

-- name: ClearSyncToken
UPDATE calendar.providers SET sync_token = '', update_time = now() WHERE tenant = @tenant AND id = @id;

-- name: InsertChannel
INSERT INTO calendar.channels (channel_id, tenant, provider_id, resource_id, resource_uri, address, client_id, expire_time)
VALUES (@channel_id, @tenant, @provider_id, @resource_id, @resource_uri, @address, @client_id, @expire_time)
RETURNING *;

-- name: ConfirmChannel
UPDATE calendar.channels SET
    resource_id = @resource_id, resource_uri = @resource_uri, expire_time = @expire_time, update_time = now()
WHERE tenant = @tenant AND channel_id = @channel_id
RETURNING *;

-- name: DeleteChannel
DELETE FROM calendar.channels WHERE tenant = @tenant AND channel_id = @channel_id;

-- name: GetChannel
SELECT * FROM calendar.channels WHERE channel_id = @channel_id;

-- name: ListChannels
SELECT * FROM calendar.channels WHERE tenant = @tenant AND provider_id = @provider_id ORDER BY create_time, channel_id;

-- name: SetChannelState
UPDATE calendar.channels SET
    state = @state, stop_error = @stop_error, stop_attempts = stop_attempts + @attempts, update_time = now()
WHERE tenant = @tenant AND channel_id = @channel_id
RETURNING *;

-- name: AdvanceMessageNumber
UPDATE calendar.channels SET
    last_message_number = @message_number, last_notification_time = now(), update_time = now()
WHERE channel_id = @channel_id AND last_message_number < @message_number
RETURNING channel_id;

-- name: InsertNotification
INSERT INTO calendar.notifications (channel_id, message_number, tenant, provider_id, resource_state)
VALUES (@channel_id, @message_number, @tenant, @provider_id, @resource_state)
ON CONFLICT (channel_id, message_number) DO NOTHING;

-- name: ListEvents
SELECT event_id, etag, status FROM calendar.events WHERE tenant = @tenant AND provider_id = @provider_id;

-- name: UpsertEvent
INSERT INTO calendar.events (provider_id, event_id, tenant, etag, status, update_time)
VALUES (@provider_id, @event_id, @tenant, @etag, @status, @update_time)
ON CONFLICT (provider_id, event_id) DO UPDATE SET
    etag = EXCLUDED.etag, status = EXCLUDED.status, update_time = EXCLUDED.update_time;

-- name: HasChanges
SELECT EXISTS (SELECT 1 FROM calendar.changes WHERE tenant = @tenant AND provider_id = @provider_id);

-- name: InsertChange
-- Run through the change feed's appender (platform/feed), which takes the tenant's append lock first:
-- seq is drawn after it, so cursors become visible in order.
INSERT INTO calendar.changes (tenant, provider_id, user_id, calendar_id, change_type, event_id, ical_uid,
    summary, description, location, start_time, end_time, all_day, start_date, end_date, event_status,
    etag, event_update_time)
VALUES (@tenant, @provider_id, @user_id, @calendar_id, @change_type, @event_id, @ical_uid,
    @summary, @description, @location, @start_time, @end_time, @all_day, @start_date, @end_date, @event_status,
    @etag, @event_update_time)
RETURNING seq;

-- name: ListChanges
-- Of one provider unless @provider_id is empty (compared as a uuid, so any letter case names it).
SELECT * FROM calendar.changes
WHERE tenant = @tenant AND (@provider_id = '' OR provider_id = NULLIF(@provider_id, '')::uuid)
    AND seq > @after AND (@include_acknowledged OR NOT acknowledged)
ORDER BY seq
LIMIT @limit;

-- name: AcknowledgeChanges
UPDATE calendar.changes SET acknowledged = true, acknowledge_time = now()
WHERE tenant = @tenant AND id = ANY(@ids::uuid[]) AND NOT acknowledged;

-- name: ProvidersBehind
-- Providers with accepted notifications no completed sync has covered yet (the sweeper enqueues them),
-- except those a live sync job is on (it holds the provider's unexpired sync lease).
SELECT tenant, id::text FROM calendar.providers p
WHERE notify_seq > synced_seq AND state IN ('connected', 'connecting')
    AND NOT EXISTS (SELECT 1 FROM calendar.sync_leases l WHERE l.provider_id = p.id AND l.expire_time > now())
ORDER BY update_time
LIMIT @limit;

-- name: NotificationQuiet
-- How long ago the provider's newest notification arrived (NULL when it has none).
SELECT now() - max(receive_time) FROM calendar.notifications WHERE tenant = @tenant AND provider_id = @provider_id;

-- name: ListUpkeep
-- Every provider of the tenant with its live channel: the newest active one Google confirmed.
SELECT p.id::text AS id, p.user_id, p.display_name, p.account_email, p.state, p.error_code,
    p.connect_time, p.last_sync_time,
    c.channel_id, c.expire_time AS channel_expire_time, c.create_time AS channel_create_time,
    c.last_notification_time AS channel_last_notification_time
FROM calendar.providers p
LEFT JOIN LATERAL (
    SELECT channel_id, expire_time, create_time, last_notification_time FROM calendar.channels
    WHERE tenant = p.tenant AND provider_id = p.id AND state = 'active' AND resource_id <> ''
    ORDER BY create_time DESC, channel_id
    LIMIT 1
) c ON true
WHERE p.tenant = @tenant
ORDER BY p.create_time, p.id;

-- name: AcquireChannelLease
-- Takes the provider's channel lease unless another holder's lease is still running.
UPDATE calendar.providers SET
    channel_lease = @lease, channel_lease_until = now() + @ttl_seconds::float8 * interval '1 second'
WHERE tenant = @tenant AND id = @id
    AND (channel_lease_until IS NULL OR channel_lease_until < now() OR channel_lease = @lease)
RETURNING id;

-- name: ReleaseChannelLease
UPDATE calendar.providers SET channel_lease = '', channel_lease_until = NULL
WHERE tenant = @tenant AND id = @id AND channel_lease = @lease;

-- name: UpsertStep
INSERT INTO calendar.provider_steps (provider_id, tenant, name, ok, error_code, detail, run_id, check_time)
VALUES (@provider_id, @tenant, @name, @ok, @error_code, @detail, @run_id, now())
ON CONFLICT (provider_id, name) DO UPDATE SET
    ok = EXCLUDED.ok, error_code = EXCLUDED.error_code, detail = EXCLUDED.detail, run_id = EXCLUDED.run_id,
    check_time = EXCLUDED.check_time;

-- name: MendStep
-- Marks a failed step as working again (a later success showed it), keeping its run.
UPDATE calendar.provider_steps SET ok = true, error_code = '', detail = @detail, check_time = now()
WHERE tenant = @tenant AND provider_id = @provider_id AND name = @name AND NOT ok;

-- name: ListSteps
SELECT name, ok, error_code, detail, run_id, check_time FROM calendar.provider_steps
WHERE tenant = @tenant AND provider_id = @provider_id
ORDER BY name;

-- name: InsertTimeline
INSERT INTO calendar.provider_timeline (tenant, provider_id, event_type, step, error_code, message, run_id)
VALUES (@tenant, @provider_id, @event_type, @step, @error_code, @message, @run_id);

-- name: TrimTimeline
-- Keeps the provider's newest @keep entries.
DELETE FROM calendar.provider_timeline
WHERE tenant = @tenant AND provider_id = @provider_id AND seq <= (
    SELECT seq FROM calendar.provider_timeline
    WHERE tenant = @tenant AND provider_id = @provider_id
    ORDER BY seq DESC OFFSET @keep LIMIT 1
);

-- name: ListTimeline
-- The provider's newest @limit entries, newest first.
SELECT event_type, step, error_code, message, run_id, create_time FROM calendar.provider_timeline
WHERE tenant = @tenant AND provider_id = @provider_id
ORDER BY seq DESC
LIMIT @limit;

-- Test helpers (package calendartesting): other modules' tests arrange the calendar service's state
-- through these instead of writing its tables.

-- name: TestAgeTenant
-- Every recorded time of the tenant's providers and channels — Google's channel expirations included —
-- and of their notifications, diagnostics steps and timelines, moved back by @by: as if all of it had
-- happened that long ago.
WITH providers AS (
    UPDATE calendar.providers SET
        last_sync_time = last_sync_time - @by::interval, connect_time = connect_time - @by::interval,
        create_time = create_time - @by::interval, update_time = update_time - @by::interval,
        channel_lease_until = channel_lease_until - @by::interval
    WHERE tenant = @tenant
    RETURNING id
), channels AS (
    UPDATE calendar.channels SET
        expire_time = expire_time - @by::interval, last_notification_time = last_notification_time - @by::interval,
        create_time = create_time - @by::interval, update_time = update_time - @by::interval
    WHERE tenant = @tenant
), notifications AS (
    UPDATE calendar.notifications SET receive_time = receive_time - @by::interval WHERE tenant = @tenant
), steps AS (
    UPDATE calendar.provider_steps SET check_time = check_time - @by::interval WHERE tenant = @tenant
), timeline AS (
    UPDATE calendar.provider_timeline SET create_time = create_time - @by::interval WHERE tenant = @tenant
)
SELECT count(*) FROM providers;

-- name: ActivityDays
-- One row per UTC day of the last @days days (today included) with the provider's traffic:
-- notifications accepted, syncs that recorded changes (a sync records its changes in one transaction,
-- so they share one record_time), failures on its timeline and changes recorded.
SELECT d.day AS start_time,
    (SELECT count(*) FROM calendar.notifications n
      WHERE n.tenant = @tenant AND n.provider_id = @provider_id
        AND n.receive_time >= d.day AND n.receive_time < d.day + interval '1 day') AS notifications,
    (SELECT count(DISTINCT c.record_time) FROM calendar.changes c
      WHERE c.tenant = @tenant AND c.provider_id = @provider_id
        AND c.record_time >= d.day AND c.record_time < d.day + interval '1 day') AS syncs,
    (SELECT count(*) FROM calendar.provider_timeline t
      WHERE t.tenant = @tenant AND t.provider_id = @provider_id AND t.error_code <> ''
        AND t.create_time >= d.day AND t.create_time < d.day + interval '1 day') AS errors,
    (SELECT count(*) FROM calendar.changes c
      WHERE c.tenant = @tenant AND c.provider_id = @provider_id
        AND c.record_time >= d.day AND c.record_time < d.day + interval '1 day') AS changes
FROM generate_series(date_trunc('day', now(), 'UTC') - make_interval(days => @days::int - 1),
                     date_trunc('day', now(), 'UTC'), interval '1 day') AS d(day)
ORDER BY d.day;

-- name: RecentChanges
-- The latest changes of a provider, for the UI: what and when (no description or location).
SELECT record_time, change_type, summary, start_time, start_date, all_day FROM calendar.changes
WHERE tenant = @tenant AND provider_id = @provider_id
ORDER BY seq DESC
LIMIT @limit;
