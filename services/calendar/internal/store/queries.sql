-- Named queries of the calendar schema. Each starts with "-- name: Name"; store.go loads them by name.
-- Every table is schema-qualified; every query is scoped by tenant except the channel lookup of an
-- incoming notification, whose tenant comes from the channel row (and is then proven by the token).

-- name: CreateProvider
INSERT INTO calendar.providers (tenant, user_id, calendar_id, display_name, sync_direction)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetProvider
SELECT * FROM calendar.providers WHERE tenant = $1 AND id = $2;

-- name: GetProviderForUpdate
SELECT * FROM calendar.providers WHERE tenant = $1 AND id = $2 FOR UPDATE;

-- name: ListProviders
SELECT * FROM calendar.providers
WHERE tenant = $1 AND ($2 = '' OR user_id = $2)
ORDER BY create_time, id;

-- name: UpdateProvider
UPDATE calendar.providers SET
    display_name   = COALESCE($3, display_name),
    calendar_id    = COALESCE($4, calendar_id),
    sync_direction = CASE WHEN $5::smallint > 0 THEN $5::smallint ELSE sync_direction END,
    update_time    = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: DeleteProvider
DELETE FROM calendar.providers WHERE tenant = $1 AND id = $2;

-- name: SetState
UPDATE calendar.providers SET
    state = $3, error_code = $4, error_message = $5, error_remedy = $6, update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: SetConnected
UPDATE calendar.providers SET
    state = 'connected', error_code = '', error_message = '', error_remedy = '',
    account_email = $3, available_calendars = $4, connect_time = now(), update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: ClearSyncState
UPDATE calendar.providers SET
    state = 'disconnected', error_code = '', error_message = '', error_remedy = '',
    sync_token = '', synced_seq = notify_seq, generation = generation + 1, connect_time = NULL,
    update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: DeleteEvents
DELETE FROM calendar.events WHERE tenant = $1 AND provider_id = $2;

-- name: BumpNotify
UPDATE calendar.providers SET notify_seq = notify_seq + 1
WHERE tenant = $1 AND id = $2
RETURNING notify_seq;

-- name: SaveSync
UPDATE calendar.providers SET
    sync_token = $3, synced_seq = GREATEST(synced_seq, $4), last_sync_time = now(), update_time = now()
WHERE tenant = $1 AND id = $2;

-- name: ClearSyncToken
UPDATE calendar.providers SET sync_token = '', update_time = now() WHERE tenant = $1 AND id = $2;

-- name: InsertChannel
INSERT INTO calendar.channels (channel_id, tenant, provider_id, resource_id, resource_uri, address, client_id, expire_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING *;

-- name: ConfirmChannel
UPDATE calendar.channels SET resource_id = $3, resource_uri = $4, expire_time = $5, update_time = now()
WHERE tenant = $1 AND channel_id = $2
RETURNING *;

-- name: DeleteChannel
DELETE FROM calendar.channels WHERE tenant = $1 AND channel_id = $2;

-- name: GetChannel
SELECT * FROM calendar.channels WHERE channel_id = $1;

-- name: ListChannels
SELECT * FROM calendar.channels WHERE tenant = $1 AND provider_id = $2 ORDER BY create_time, channel_id;

-- name: SetChannelState
UPDATE calendar.channels SET
    state = $3, stop_error = $4, stop_attempts = stop_attempts + $5, update_time = now()
WHERE tenant = $1 AND channel_id = $2
RETURNING *;

-- name: AdvanceMessageNumber
UPDATE calendar.channels SET
    last_message_number = $2, last_notification_time = now(), update_time = now()
WHERE channel_id = $1 AND last_message_number < $2
RETURNING channel_id;

-- name: InsertNotification
INSERT INTO calendar.notifications (channel_id, message_number, tenant, provider_id, resource_state)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel_id, message_number) DO NOTHING;

-- name: ListEvents
SELECT event_id, etag, status FROM calendar.events WHERE tenant = $1 AND provider_id = $2;

-- name: UpsertEvent
INSERT INTO calendar.events (provider_id, event_id, tenant, etag, status, update_time)
VALUES ($2, $3, $1, $4, $5, $6)
ON CONFLICT (provider_id, event_id) DO UPDATE SET
    etag = EXCLUDED.etag, status = EXCLUDED.status, update_time = EXCLUDED.update_time;

-- name: HasChanges
SELECT EXISTS (SELECT 1 FROM calendar.changes WHERE tenant = $1 AND provider_id = $2);

-- name: InsertChange
INSERT INTO calendar.changes (tenant, provider_id, user_id, calendar_id, change_type, event_id, ical_uid,
    summary, description, location, start_time, end_time, all_day, start_date, end_date, event_status,
    etag, event_update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
RETURNING seq;

-- name: ListChanges
SELECT * FROM calendar.changes
WHERE tenant = $1 AND ($2 = '' OR provider_id::text = $2) AND seq > $3 AND ($4 OR NOT acknowledged)
ORDER BY seq
LIMIT $5;

-- name: AcknowledgeChanges
UPDATE calendar.changes SET acknowledged = true, acknowledge_time = now()
WHERE tenant = $1 AND id = ANY($2::uuid[]) AND NOT acknowledged;

-- name: LockFeed
-- Serializes the writers of one tenant's change feed until commit, so cursors (seq) become visible in
-- order: a reader never skips a lower seq that commits after a higher one.
SELECT pg_advisory_xact_lock(hashtextextended('calendar.changes:' || $1, 0));

-- name: ProvidersBehind
-- Providers with accepted notifications no completed sync has covered yet (the sweeper enqueues them).
SELECT tenant, id::text FROM calendar.providers
WHERE notify_seq > synced_seq AND state IN ('connected', 'connecting')
ORDER BY update_time
LIMIT $1;

-- name: NotificationQuiet
-- How long ago the provider's newest notification arrived (NULL when it has none).
SELECT now() - max(receive_time) FROM calendar.notifications WHERE tenant = $1 AND provider_id = $2;
