-- Named queries of the gmail schema. Each starts with "-- name: Name"; store.go loads them by name.
-- The search_path is not relied on: every table is schema-qualified.

-- name: CreateProvider
INSERT INTO gmail.providers (tenant, mailbox, display_name, label_filters, inbound_defaults, active)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: GetProvider
SELECT * FROM gmail.providers WHERE tenant = $1 AND id = $2;

-- name: GetProviderForUpdate
SELECT * FROM gmail.providers WHERE tenant = $1 AND id = $2 FOR UPDATE;

-- name: ListProviders
SELECT * FROM gmail.providers WHERE tenant = $1 ORDER BY create_time, id;

-- name: ProviderByMailbox
SELECT * FROM gmail.providers WHERE tenant = $1 AND mailbox = $2;

-- name: UpdateProvider
UPDATE gmail.providers SET
    display_name     = COALESCE($3, display_name),
    label_filters    = CASE WHEN $4::boolean THEN $5::text[] ELSE label_filters END,
    inbound_defaults = COALESCE($6, inbound_defaults),
    active           = COALESCE($7, active),
    update_time      = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: DeleteProvider
DELETE FROM gmail.providers WHERE tenant = $1 AND id = $2;

-- name: SetConnecting
UPDATE gmail.providers SET state = 'connecting', error_code = '', error_message = '', error_remedy = '',
    update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: SetError
UPDATE gmail.providers SET state = 'error', error_code = $3, error_message = $4, error_remedy = $5,
    update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: SetProvisioned
-- $3 state, $4-$6 error, $7 account email, $8 subscription, $9 topic, $10 label ids, $11 watch expiry,
-- $12 history baseline (kept when one is stored already: mail since then must still be synced).
UPDATE gmail.providers SET
    state = $3, error_code = $4, error_message = $5, error_remedy = $6,
    account_email     = CASE WHEN $7 = '' THEN account_email ELSE $7 END,
    subscription      = $8,
    topic             = $9,
    watch_label_ids   = $10,
    watch_expire_time = COALESCE($11, watch_expire_time),
    history_id        = COALESCE(history_id, $12),
    connect_time      = CASE WHEN $3 = 'connected' THEN COALESCE(connect_time, now()) ELSE connect_time END,
    update_time       = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: ResetProvider
UPDATE gmail.providers SET
    state = 'disconnected', error_code = '', error_message = '', error_remedy = '',
    account_email = '', subscription = '', topic = '', watch_label_ids = '{}',
    history_id = NULL, watch_expire_time = NULL, connect_time = NULL, update_time = now()
WHERE tenant = $1 AND id = $2
RETURNING *;

-- name: DeleteSteps
DELETE FROM gmail.provider_steps WHERE tenant = $1 AND provider_id = $2;

-- name: InsertStep
INSERT INTO gmail.provider_steps (provider_id, tenant, position, name, ok, detail, check_time)
VALUES ($2, $1, $3, $4, $5, $6, $7);

-- name: ListSteps
SELECT name, ok, detail, check_time FROM gmail.provider_steps
WHERE tenant = $1 AND provider_id = $2 ORDER BY position;

-- name: UpsertSubscription
INSERT INTO gmail.subscriptions (name, tenant, project_id, topic, service_account_email, push_endpoint, audience)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET
    project_id = EXCLUDED.project_id, topic = EXCLUDED.topic,
    service_account_email = EXCLUDED.service_account_email, push_endpoint = EXCLUDED.push_endpoint,
    audience = EXCLUDED.audience, update_time = now()
WHERE gmail.subscriptions.tenant = EXCLUDED.tenant
RETURNING name;

-- name: GetSubscription
SELECT name, tenant, project_id, topic, service_account_email, push_endpoint, audience
FROM gmail.subscriptions WHERE name = $1;

-- name: InsertNotification
INSERT INTO gmail.notifications (tenant, provider_id, subscription, pubsub_message_id, email_address, history_id, publish_time)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (subscription, pubsub_message_id) DO NOTHING
RETURNING id;

-- name: TouchLastPush
UPDATE gmail.providers SET last_push_time = now() WHERE tenant = $1 AND id = $2;

-- name: PendingNotifications
-- The newest pending notification id, its highest history id and how long ago the latest one arrived.
SELECT COALESCE(max(id), 0), COALESCE(max(history_id), 0),
       COALESCE(EXTRACT(EPOCH FROM (now() - max(receive_time))), 0)::float8
FROM gmail.notifications WHERE tenant = $1 AND provider_id = $2 AND process_time IS NULL;

-- name: MarkProcessed
UPDATE gmail.notifications SET process_time = now()
WHERE tenant = $1 AND provider_id = $2 AND id <= $3 AND process_time IS NULL;

-- name: PendingAfter
SELECT EXISTS (SELECT 1 FROM gmail.notifications
               WHERE tenant = $1 AND provider_id = $2 AND id > $3 AND process_time IS NULL);

-- name: ProvidersWithStalePending
SELECT DISTINCT tenant, provider_id FROM gmail.notifications
WHERE process_time IS NULL AND receive_time < now() - make_interval(secs => $1)
LIMIT 500;

-- name: MessageExists
SELECT EXISTS (SELECT 1 FROM gmail.messages WHERE provider_id = $1 AND gmail_message_id = $2);

-- name: InsertMessage
INSERT INTO gmail.messages (tenant, provider_id, mailbox, gmail_message_id, thread_id, history_id,
    message_id_header, in_reply_to, "references", from_address, to_addresses, cc_addresses, subject,
    text_body, html_body, attachments, label_ids, receive_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (provider_id, gmail_message_id) DO NOTHING
RETURNING seq;

-- name: AdvanceHistory
UPDATE gmail.providers SET history_id = GREATEST(COALESCE(history_id, 0), $3), last_sync_time = now()
WHERE tenant = $1 AND id = $2
RETURNING history_id;

-- name: TouchSync
UPDATE gmail.providers SET last_sync_time = now() WHERE tenant = $1 AND id = $2;

-- name: LastMessageTime
SELECT max(receive_time) FROM gmail.messages WHERE tenant = $1 AND provider_id = $2;

-- name: ListMessages
-- $2 provider id or NULL, $3 after seq, $4 limit, $5 include acknowledged.
SELECT seq, id, provider_id, mailbox, gmail_message_id, thread_id, message_id_header, in_reply_to,
       "references", from_address, to_addresses, cc_addresses, subject, text_body, html_body, attachments,
       label_ids, receive_time, acknowledge_time
FROM gmail.messages
WHERE tenant = $1 AND ($2::uuid IS NULL OR provider_id = $2) AND seq > $3
  AND ($5::boolean OR acknowledge_time IS NULL)
ORDER BY seq
LIMIT $4;

-- name: Acknowledge
UPDATE gmail.messages SET acknowledge_time = now()
WHERE tenant = $1 AND id = ANY($2::uuid[]) AND acknowledge_time IS NULL;

-- name: NotifyInbound
SELECT pg_notify('gmail_inbound', $1);

-- name: LockProvider
-- Serializes a sync's last look for pending notifications with the enqueuers of its follow-up job.
SELECT 1 FROM gmail.providers WHERE tenant = $1 AND id = $2 FOR UPDATE;
