-- Gmail inbound providers, their provisioning, push notifications and parsed messages.
-- Every row carries its tenant; every query filters by it.

CREATE TABLE providers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant             text NOT NULL,
    mailbox            text NOT NULL,                  -- lowercased address
    display_name       text NOT NULL DEFAULT '',
    label_filters      text[] NOT NULL DEFAULT '{}',
    inbound_defaults   jsonb NOT NULL DEFAULT '{}',
    active             boolean NOT NULL DEFAULT true,
    -- disconnected | connecting | connected | error  (PAUSED is shown when active is false)
    state              text NOT NULL DEFAULT 'disconnected'
                       CHECK (state IN ('disconnected', 'connecting', 'connected', 'error')),
    error_code         text NOT NULL DEFAULT '',
    error_message      text NOT NULL DEFAULT '',
    error_remedy       text NOT NULL DEFAULT '',
    account_email      text NOT NULL DEFAULT '',
    subscription       text NOT NULL DEFAULT '',
    topic              text NOT NULL DEFAULT '',
    watch_label_ids    text[] NOT NULL DEFAULT '{}',
    history_id         bigint,                         -- last fully processed Gmail history id
    watch_expire_time  timestamptz,
    last_push_time     timestamptz,
    last_sync_time     timestamptz,
    connect_time       timestamptz,
    create_time        timestamptz NOT NULL DEFAULT now(),
    update_time        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, mailbox)
);

-- The outcome of each activation step, for diagnostics.
CREATE TABLE provider_steps (
    provider_id  uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    tenant       text NOT NULL,
    position     int NOT NULL,
    name         text NOT NULL,
    ok           boolean NOT NULL,
    detail       text NOT NULL DEFAULT '',
    check_time   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, name)
);

-- Push subscriptions created at provisioning: the routing table from a subscription to its tenant and the
-- service account whose OIDC tokens its pushes must carry.
CREATE TABLE subscriptions (
    name                   text PRIMARY KEY,
    tenant                 text NOT NULL,
    project_id             text NOT NULL,
    topic                  text NOT NULL,
    service_account_email  text NOT NULL,
    push_endpoint          text NOT NULL,
    audience               text NOT NULL,
    create_time            timestamptz NOT NULL DEFAULT now(),
    update_time            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant);

-- Push notifications, stored before they are answered; the sync job is enqueued in the same transaction.
CREATE TABLE notifications (
    id                 bigserial PRIMARY KEY,
    tenant             text NOT NULL,
    provider_id        uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    subscription       text NOT NULL,
    pubsub_message_id  text NOT NULL,
    email_address      text NOT NULL,
    history_id         bigint NOT NULL,
    publish_time       timestamptz,
    receive_time       timestamptz NOT NULL DEFAULT now(),
    process_time       timestamptz,
    UNIQUE (subscription, pubsub_message_id)
);
CREATE INDEX notifications_pending ON notifications (provider_id, id) WHERE process_time IS NULL;

-- Parsed inbound messages; seq is the cursor order.
CREATE TABLE messages (
    seq                bigserial PRIMARY KEY,
    id                 uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    tenant             text NOT NULL,
    provider_id        uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    mailbox            text NOT NULL,
    gmail_message_id   text NOT NULL,
    thread_id          text NOT NULL DEFAULT '',
    history_id         bigint,
    message_id_header  text NOT NULL DEFAULT '',
    in_reply_to        text NOT NULL DEFAULT '',
    "references"       text[] NOT NULL DEFAULT '{}',
    from_address       text NOT NULL DEFAULT '',
    to_addresses       text[] NOT NULL DEFAULT '{}',
    cc_addresses       text[] NOT NULL DEFAULT '{}',
    subject            text NOT NULL DEFAULT '',
    text_body          text NOT NULL DEFAULT '',
    html_body          text NOT NULL DEFAULT '',
    attachments        jsonb NOT NULL DEFAULT '[]',
    label_ids          text[] NOT NULL DEFAULT '{}',
    receive_time       timestamptz NOT NULL,
    acknowledge_time   timestamptz,
    create_time        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_id, gmail_message_id)
);
CREATE INDEX messages_tenant_seq ON messages (tenant, seq);
CREATE INDEX messages_provider_time ON messages (provider_id, receive_time DESC);
