-- Named queries of the gmail schema. Each starts with "-- name: Name"; store.go calls them by name with
-- named parameters (pg.Args). The search_path is not relied on: every table is schema-qualified.

-- name: CreateProvider
INSERT INTO gmail.providers (tenant, mailbox, display_name, label_filters, inbound_defaults, active)
VALUES (@tenant, @mailbox, @display_name, @label_filters, @inbound_defaults, @active)
RETURNING *;

-- name: GetProvider
SELECT * FROM gmail.providers WHERE tenant = @tenant AND id = @id;

-- name: GetProviderForUpdate
SELECT * FROM gmail.providers WHERE tenant = @tenant AND id = @id FOR UPDATE;

-- name: ListProviders
SELECT * FROM gmail.providers WHERE tenant = @tenant ORDER BY create_time, id;

-- name: ProviderByMailbox
SELECT * FROM gmail.providers WHERE tenant = @tenant AND mailbox = @mailbox;

-- name: UpdateProvider
-- NULL display name, inbound defaults or active keep the stored value; label filters are replaced only
-- when set_labels.
UPDATE gmail.providers SET
    display_name     = COALESCE(@display_name, display_name),
    label_filters    = CASE WHEN @set_labels::boolean THEN @label_filters::text[] ELSE label_filters END,
    inbound_defaults = COALESCE(@inbound_defaults, inbound_defaults),
    active           = COALESCE(@active, active),
    update_time      = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: DeleteProvider
DELETE FROM gmail.providers WHERE tenant = @tenant AND id = @id;

-- name: SetConnecting
UPDATE gmail.providers SET state = 'connecting', error_code = '', error_message = '', error_remedy = '',
    update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: SetError
-- error_step is the diagnostics step that failed: a later success of a step covering it clears the error
-- (ClearError). A disconnected provider (reset or disconnected while a sync or an upkeep step was in
-- flight) is left alone: the failure is of the connection that no longer exists (no row: ErrNotFound).
UPDATE gmail.providers SET state = 'error', error_code = @error_code, error_message = @error_message,
    error_remedy = @error_remedy, error_step = @error_step, update_time = now()
WHERE tenant = @tenant AND id = @id AND state <> 'disconnected'
RETURNING *;

-- name: ClearError
-- A step succeeded: an error recorded by one of the steps it covers is cleared (CONNECTED again).
UPDATE gmail.providers SET state = 'connected', error_code = '', error_message = '', error_remedy = '',
    error_step = '', connect_time = COALESCE(connect_time, now()), update_time = now()
WHERE tenant = @tenant AND id = @id AND state = 'error' AND error_step = ANY(@steps::text[]);

-- name: RecordProvisioningCheck
-- The topic, the publisher grant and the push subscription were read back right (or made so).
UPDATE gmail.providers SET topic = @topic, subscription = @subscription, last_provisioning_check_time = now(),
    update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: RecordWatch
-- users.watch succeeded: the expiration is Google's, whatever it is. The history baseline is kept when
-- one is stored already, as at activation.
UPDATE gmail.providers SET watch_label_ids = @watch_label_ids, watch_expire_time = @watch_expire_time,
    last_watch_time = now(), history_id = COALESCE(history_id, @history_baseline), update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: SetProvisioned
-- The history baseline is kept when one is stored already: mail since then must still be synced.
UPDATE gmail.providers SET
    state = @state, error_code = @error_code, error_message = @error_message, error_remedy = @error_remedy,
    error_step        = @error_step,
    account_email     = CASE WHEN @account_email = '' THEN account_email ELSE @account_email END,
    subscription      = @subscription,
    topic             = @topic,
    watch_label_ids   = @watch_label_ids,
    watch_expire_time = COALESCE(@watch_expire_time, watch_expire_time),
    history_id        = COALESCE(history_id, @history_baseline),
    connect_time      = CASE WHEN @state = 'connected' THEN COALESCE(connect_time, now()) ELSE connect_time END,
    last_watch_time   = CASE WHEN @watch_expire_time::timestamptz IS NULL THEN last_watch_time ELSE now() END,
    last_provisioning_check_time = CASE WHEN @provisioning_checked::boolean THEN now() ELSE last_provisioning_check_time END,
    update_time       = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: ResetProvider
UPDATE gmail.providers SET
    state = 'disconnected', error_code = '', error_message = '', error_remedy = '',
    account_email = '', subscription = '', topic = '', watch_label_ids = '{}',
    history_id = NULL, watch_expire_time = NULL, connect_time = NULL, error_step = '',
    last_watch_time = NULL, last_provisioning_check_time = NULL, update_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING *;

-- name: DeleteSteps
DELETE FROM gmail.provider_steps WHERE tenant = @tenant AND provider_id = @provider_id;

-- name: InsertStep
INSERT INTO gmail.provider_steps (provider_id, tenant, position, name, ok, detail, check_time)
VALUES (@provider_id, @tenant, @position, @name, @ok, @detail, @check_time);

-- name: UpsertStep
-- An upkeep step replaces the recorded outcome of the diagnostics step it re-ran.
INSERT INTO gmail.provider_steps (provider_id, tenant, position, name, ok, detail, check_time)
VALUES (@provider_id, @tenant, @position, @name, @ok, @detail, @check_time)
ON CONFLICT (provider_id, name) DO UPDATE SET
    position = EXCLUDED.position, ok = EXCLUDED.ok, detail = EXCLUDED.detail, check_time = EXCLUDED.check_time;

-- name: ListSteps
SELECT name, ok, detail, check_time FROM gmail.provider_steps
WHERE tenant = @tenant AND provider_id = @provider_id ORDER BY position;

-- name: UpsertSubscription
-- Returns no row when the name belongs to another tenant.
INSERT INTO gmail.subscriptions (name, tenant, project_id, topic, service_account_email, push_endpoint, audience)
VALUES (@name, @tenant, @project_id, @topic, @service_account_email, @push_endpoint, @audience)
ON CONFLICT (name) DO UPDATE SET
    project_id = EXCLUDED.project_id, topic = EXCLUDED.topic,
    service_account_email = EXCLUDED.service_account_email, push_endpoint = EXCLUDED.push_endpoint,
    audience = EXCLUDED.audience, update_time = now()
WHERE gmail.subscriptions.tenant = EXCLUDED.tenant
RETURNING name;

-- name: GetSubscription
SELECT name, tenant, project_id, topic, service_account_email, push_endpoint, audience
FROM gmail.subscriptions WHERE name = @name;

-- name: InsertNotification
-- Returns no row for a redelivery (same subscription and Pub/Sub message id).
INSERT INTO gmail.notifications (tenant, provider_id, subscription, pubsub_message_id, email_address, history_id, publish_time)
VALUES (@tenant, @provider_id, @subscription, @pubsub_message_id, @email_address, @history_id, @publish_time)
ON CONFLICT (subscription, pubsub_message_id) DO NOTHING
RETURNING id;

-- name: TouchLastPush
UPDATE gmail.providers SET last_push_time = now() WHERE tenant = @tenant AND id = @id;

-- name: PendingNotifications
-- The newest pending notification id, its highest history id and how long ago the latest one arrived.
SELECT COALESCE(max(id), 0), COALESCE(max(history_id), 0),
       COALESCE(EXTRACT(EPOCH FROM (now() - max(receive_time))), 0)::float8
FROM gmail.notifications WHERE tenant = @tenant AND provider_id = @provider_id AND process_time IS NULL;

-- name: MarkProcessed
UPDATE gmail.notifications SET process_time = now()
WHERE tenant = @tenant AND provider_id = @provider_id AND id <= @up_to AND process_time IS NULL;

-- name: PendingAfter
SELECT EXISTS (SELECT 1 FROM gmail.notifications
               WHERE tenant = @tenant AND provider_id = @provider_id AND id > @after AND process_time IS NULL);

-- name: ProvidersWithStalePending
SELECT DISTINCT tenant, provider_id FROM gmail.notifications
WHERE process_time IS NULL AND receive_time < now() - make_interval(secs => @older_than_seconds)
LIMIT 500;

-- name: MessageExists
SELECT EXISTS (SELECT 1 FROM gmail.messages WHERE provider_id = @provider_id AND gmail_message_id = @gmail_message_id);

-- name: InsertMessage
-- Returns no row when the message was stored before. Run through the inbound feed's appender
-- (platform/feed), which takes the tenant's append lock first: seq is drawn after it, so cursors become
-- visible in order.
INSERT INTO gmail.messages (tenant, provider_id, mailbox, gmail_message_id, thread_id, history_id,
    message_id_header, in_reply_to, "references", from_address, to_addresses, cc_addresses, subject,
    text_body, html_body, attachments, label_ids, receive_time, truncated)
VALUES (@tenant, @provider_id, @mailbox, @gmail_message_id, @thread_id, @history_id,
    @message_id_header, @in_reply_to, @references, @from_address, @to_addresses, @cc_addresses, @subject,
    @text_body, @html_body, @attachments, @label_ids, @receive_time, @truncated)
ON CONFLICT (provider_id, gmail_message_id) DO NOTHING
RETURNING seq;

-- name: AdvanceHistory
UPDATE gmail.providers SET history_id = GREATEST(COALESCE(history_id, 0), @history_id), last_sync_time = now()
WHERE tenant = @tenant AND id = @id
RETURNING history_id;

-- name: TouchSync
UPDATE gmail.providers SET last_sync_time = now() WHERE tenant = @tenant AND id = @id;

-- name: LastMessageTime
SELECT max(receive_time) FROM gmail.messages WHERE tenant = @tenant AND provider_id = @provider_id;

-- name: ListMessages
-- A NULL provider id lists every provider of the tenant. At most @limit rows, and no row that would take
-- the page past @max_bytes — counted from the stored sizes of the large columns (octet_length reads a
-- TOASTed value's size without fetching it), so the bodies of rows past the bound are never read —
-- except the first row, which is always returned (platform/feed's byte bound; the feed trims by the
-- exact message size after this).
WITH candidates AS (
    SELECT seq, octet_length(text_body) + octet_length(html_body) + octet_length(subject)
               + pg_column_size("references") + pg_column_size(to_addresses) + pg_column_size(cc_addresses)
               + pg_column_size(attachments) AS size
    FROM gmail.messages
    WHERE tenant = @tenant AND (@provider_id::uuid IS NULL OR provider_id = @provider_id) AND seq > @after_seq
      AND (@include_acknowledged::boolean OR acknowledge_time IS NULL)
    ORDER BY seq
    LIMIT @limit
), page AS (
    SELECT seq, row_number() OVER w AS n, sum(size) OVER w AS running
    FROM candidates
    WINDOW w AS (ORDER BY seq)
)
SELECT m.seq, m.id, m.provider_id, m.mailbox, m.gmail_message_id, m.thread_id, m.message_id_header, m.in_reply_to,
       m."references", m.from_address, m.to_addresses, m.cc_addresses, m.subject, m.text_body, m.html_body, m.attachments,
       m.label_ids, m.receive_time, m.acknowledge_time, m.truncated
FROM page JOIN gmail.messages m ON m.tenant = @tenant AND m.seq = page.seq
WHERE page.n = 1 OR page.running <= @max_bytes
ORDER BY m.seq;

-- name: Acknowledge
UPDATE gmail.messages SET acknowledge_time = now()
WHERE tenant = @tenant AND id = ANY(@ids::uuid[]) AND acknowledge_time IS NULL;

-- name: LockProvider
-- Serializes a sync's last look for pending notifications with the enqueuers of its follow-up job.
-- FOR NO KEY UPDATE: it conflicts with every other enqueuer's lock (this one, the dispatcher's) but not
-- with the FOR KEY SHARE lock a notification's insert takes on its provider (the foreign key), so
-- pushes being stored never wait for a sync's bookkeeping.
SELECT 1 FROM gmail.providers WHERE tenant = @tenant AND id = @id FOR NO KEY UPDATE;

-- name: ListUpkeep
-- Every provider of the tenant with the push endpoint and audience its subscription was provisioned with.
SELECT p.*, COALESCE(s.push_endpoint, '') AS push_endpoint, COALESCE(s.audience, '') AS push_audience
FROM gmail.providers p
LEFT JOIN gmail.subscriptions s ON s.name = p.subscription AND s.tenant = p.tenant
WHERE p.tenant = @tenant
ORDER BY p.create_time, p.id;

-- name: InsertEvent
INSERT INTO gmail.provider_events (tenant, provider_id, type, step, error_code, message, run_id)
VALUES (@tenant, @provider_id, @type, @step, @error_code, @message, @run_id);

-- name: PruneEvents
-- A provider's timeline keeps its newest @keep events.
DELETE FROM gmail.provider_events
WHERE tenant = @tenant AND provider_id = @provider_id AND id < (
    SELECT COALESCE(min(id), 0) FROM (
        SELECT id FROM gmail.provider_events WHERE tenant = @tenant AND provider_id = @provider_id
        ORDER BY id DESC LIMIT @keep) newest);

-- name: ListEvents
-- Newest first.
SELECT type, step, error_code, message, run_id, create_time FROM gmail.provider_events
WHERE tenant = @tenant AND provider_id = @provider_id
ORDER BY id DESC
LIMIT @limit;

-- Test helpers (package gmailtesting): other modules' tests arrange the gmail service's state through
-- these instead of writing its tables.

-- name: TestAgeTenant
-- Every recorded time of the tenant's providers — Google's watch expiration included — and of their
-- diagnostics steps and timelines, moved back by @by: as if all of it had happened that long ago.
WITH providers AS (
    UPDATE gmail.providers SET
        watch_expire_time = watch_expire_time - @by::interval, last_push_time = last_push_time - @by::interval,
        last_sync_time = last_sync_time - @by::interval, connect_time = connect_time - @by::interval,
        last_watch_time = last_watch_time - @by::interval,
        last_provisioning_check_time = last_provisioning_check_time - @by::interval,
        create_time = create_time - @by::interval, update_time = update_time - @by::interval
    WHERE tenant = @tenant
    RETURNING id
), steps AS (
    UPDATE gmail.provider_steps SET check_time = check_time - @by::interval WHERE tenant = @tenant
), events AS (
    UPDATE gmail.provider_events SET create_time = create_time - @by::interval WHERE tenant = @tenant
)
SELECT count(*) FROM providers;

-- name: ActivityDays
-- One row per UTC day of the last @days days (today included) with the provider's traffic: pushes
-- received, syncs (push-triggered batches — every notification a batch covers gets its one process_time
-- — plus maintenance reconciles), failures on its timeline and messages stored.
SELECT d.day AS start_time,
    (SELECT count(*) FROM gmail.notifications n
      WHERE n.tenant = @tenant AND n.provider_id = @provider_id
        AND n.receive_time >= d.day AND n.receive_time < d.day + interval '1 day') AS pushes,
    (SELECT count(DISTINCT n.process_time) FROM gmail.notifications n
      WHERE n.tenant = @tenant AND n.provider_id = @provider_id
        AND n.process_time >= d.day AND n.process_time < d.day + interval '1 day')
    + (SELECT count(*) FROM gmail.provider_events e
      WHERE e.tenant = @tenant AND e.provider_id = @provider_id AND e.type IN ('reconciled', 'reconcile_ok')
        AND e.create_time >= d.day AND e.create_time < d.day + interval '1 day') AS syncs,
    (SELECT count(*) FROM gmail.provider_events e
      WHERE e.tenant = @tenant AND e.provider_id = @provider_id
        AND (e.error_code <> '' OR e.type LIKE '%failed' OR e.type LIKE '%failure')
        AND e.create_time >= d.day AND e.create_time < d.day + interval '1 day') AS errors,
    (SELECT count(*) FROM gmail.messages m
      WHERE m.tenant = @tenant AND m.provider_id = @provider_id
        AND m.create_time >= d.day AND m.create_time < d.day + interval '1 day') AS messages
FROM generate_series(date_trunc('day', now(), 'UTC') - make_interval(days => @days::int - 1),
                     date_trunc('day', now(), 'UTC'), interval '1 day') AS d(day)
ORDER BY d.day;

-- name: RecentMessages
-- The newest inbound messages of a provider, for the UI: when, from whom, about what (nothing else).
SELECT receive_time, from_address, subject FROM gmail.messages
WHERE tenant = @tenant AND provider_id = @provider_id
ORDER BY receive_time DESC, seq DESC
LIMIT @limit;

-- name: TouchLastPushes
-- The push dispatcher's lock (service/dispatch.go): the providers' rows FOR NO KEY UPDATE, taken in id
-- order (two dispatches never deadlock). last_push_time is written only where it is a second old or
-- more (StorePushes skips a row locked meanwhile, so a push may have left it behind): a dispatch a few
-- times a second does not rewrite every row it locks. Returns the providers that still exist.
WITH locked AS (
    SELECT id, tenant, last_push_time FROM gmail.providers
    WHERE (tenant, id) IN (SELECT t, i FROM unnest(@tenants::text[], @ids::uuid[]) AS x(t, i))
    ORDER BY id
    FOR NO KEY UPDATE
), touched AS (
    UPDATE gmail.providers p SET last_push_time = now()
    FROM locked l
    WHERE p.id = l.id AND (l.last_push_time IS NULL OR l.last_push_time < now() - interval '1 second')
)
SELECT tenant, id::text FROM locked;

-- name: StorePushes
-- The pushes' one statement (their whole transaction; a group of concurrent pushes shares it): each
-- notification, stored only while the route its push was accepted by still holds — the subscription is
-- the provider's current one, of the tenant, with the token's service account, for that mailbox — so a
-- route cached in memory can never store a push for a superseded subscription, another tenant or
-- another service account. A redelivery (same subscription and Pub/Sub message id) stores nothing. Per
-- input row (its ordinality n): routed, the route still holds; stored, a new row. The row is the durable
-- enqueue (the sync job follows from it: the dispatcher, the sweeper). The caller passes each
-- (subscription, Pub/Sub message id) at most once.
WITH input AS (
    SELECT * FROM unnest(@tenants::text[], @provider_ids::uuid[], @mailboxes::text[], @subscriptions::text[],
        @service_account_emails::text[], @pubsub_message_ids::text[], @history_ids::bigint[], @publish_times::timestamptz[])
        WITH ORDINALITY AS x(tenant, provider_id, mailbox, subscription, service_account_email, pubsub_message_id, history_id, publish_time, n)
), route AS (
    SELECT i.* FROM input i
    JOIN gmail.providers p ON p.tenant = i.tenant AND p.id = i.provider_id AND p.mailbox = i.mailbox AND p.subscription = i.subscription
    JOIN gmail.subscriptions s ON s.name = p.subscription AND s.tenant = p.tenant
    WHERE s.service_account_email <> '' AND lower(s.service_account_email) = lower(i.service_account_email)
), stored AS (
    INSERT INTO gmail.notifications (tenant, provider_id, subscription, pubsub_message_id, email_address, history_id, publish_time)
    -- In key order: concurrent statements then wait for each other's uncommitted keys in one order, so
    -- two groups holding a message and its redelivery cannot deadlock.
    SELECT tenant, provider_id, subscription, pubsub_message_id, mailbox, history_id, publish_time FROM route
    ORDER BY subscription, pubsub_message_id
    ON CONFLICT (subscription, pubsub_message_id) DO NOTHING
    RETURNING tenant, provider_id, subscription, pubsub_message_id
), touched AS (
    -- last_push_time to the second, never waiting: a row updated at most once a second during a burst
    -- (so one mailbox's pushes do not queue on it), and skipped while locked — by another group setting
    -- it, or by the dispatcher, which sets it too.
    UPDATE gmail.providers p SET last_push_time = now()
    FROM (SELECT id FROM gmail.providers
          WHERE (tenant, id) IN (SELECT DISTINCT tenant, provider_id FROM stored)
            AND (last_push_time IS NULL OR last_push_time < now() - interval '1 second')
          FOR NO KEY UPDATE SKIP LOCKED) st
    WHERE p.id = st.id
)
SELECT i.n,
       EXISTS (SELECT 1 FROM route r WHERE r.n = i.n) AS routed,
       EXISTS (SELECT 1 FROM stored s WHERE s.subscription = i.subscription AND s.pubsub_message_id = i.pubsub_message_id) AS stored
FROM input i
ORDER BY i.n;
