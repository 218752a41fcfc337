-- Google Calendar providers, their push channels, received notifications, the last seen state of each
-- event (for deduplication) and the change feed offered to the platform. Every row carries its tenant.

CREATE TABLE providers (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant               text NOT NULL,
    user_id              text NOT NULL,
    calendar_id          text NOT NULL DEFAULT 'primary',
    display_name         text NOT NULL DEFAULT '',
    sync_direction       smallint NOT NULL DEFAULT 1,
    -- disconnected | connecting | connected | error
    state                text NOT NULL DEFAULT 'disconnected'
                         CHECK (state IN ('disconnected', 'connecting', 'connected', 'error')),
    error_code           text NOT NULL DEFAULT '',
    error_message        text NOT NULL DEFAULT '',
    error_remedy         text NOT NULL DEFAULT '',
    account_email        text NOT NULL DEFAULT '',
    available_calendars  text[] NOT NULL DEFAULT '{}',
    -- Google's nextSyncToken of the last completed sync; '' = none (a full sync comes next).
    sync_token           text NOT NULL DEFAULT '',
    -- Bumped by every accepted exists/not_exists notification; synced_seq is the value the last
    -- completed sync started from, so a worker sees notifications that arrived during its run.
    notify_seq           bigint NOT NULL DEFAULT 0,
    synced_seq           bigint NOT NULL DEFAULT 0,
    -- Bumped on disconnect/reset so a sync that started before cannot write afterwards.
    generation           bigint NOT NULL DEFAULT 0,
    last_sync_time       timestamptz,
    connect_time         timestamptz,
    create_time          timestamptz NOT NULL DEFAULT now(),
    update_time          timestamptz NOT NULL DEFAULT now(),
    -- One provider per technician.
    UNIQUE (tenant, user_id)
);

-- Push channels (events.watch). The channel token is never stored: it is an HMAC recomputed on receipt.
CREATE TABLE channels (
    channel_id              text PRIMARY KEY,
    tenant                  text NOT NULL,
    provider_id             uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    resource_id             text NOT NULL,
    resource_uri            text NOT NULL DEFAULT '',
    address                 text NOT NULL,
    -- The OAuth client whose grant created the channel: only it can stop the channel.
    client_id               text NOT NULL,
    expire_time             timestamptz,
    -- active | stopping | stopped | unstoppable
    state                   text NOT NULL DEFAULT 'active'
                            CHECK (state IN ('active', 'stopping', 'stopped', 'unstoppable')),
    stop_attempts           int NOT NULL DEFAULT 0,
    stop_error              text NOT NULL DEFAULT '',
    last_message_number     bigint NOT NULL DEFAULT 0,
    last_notification_time  timestamptz,
    create_time             timestamptz NOT NULL DEFAULT now(),
    update_time             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channels_provider ON channels (tenant, provider_id);

-- Accepted notifications, stored before they are answered (idempotency key: channel id + message number).
CREATE TABLE notifications (
    channel_id      text NOT NULL,
    message_number  bigint NOT NULL,
    tenant          text NOT NULL,
    provider_id     uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    resource_state  text NOT NULL,
    receive_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, message_number)
);
CREATE INDEX notifications_provider ON notifications (tenant, provider_id, receive_time);

-- The last state seen of each event: a sync records a change only when the etag differs.
CREATE TABLE events (
    provider_id   uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    event_id      text NOT NULL,
    tenant        text NOT NULL,
    etag          text NOT NULL,
    status        text NOT NULL,
    update_time   timestamptz,
    PRIMARY KEY (provider_id, event_id)
);

-- The change feed. seq is the cursor.
CREATE TABLE changes (
    seq                bigserial PRIMARY KEY,
    id                 uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    tenant             text NOT NULL,
    provider_id        uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    user_id            text NOT NULL,
    calendar_id        text NOT NULL,
    change_type        smallint NOT NULL,
    event_id           text NOT NULL DEFAULT '',
    ical_uid           text NOT NULL DEFAULT '',
    summary            text NOT NULL DEFAULT '',
    description        text NOT NULL DEFAULT '',
    location           text NOT NULL DEFAULT '',
    start_time         timestamptz,
    end_time           timestamptz,
    all_day            boolean NOT NULL DEFAULT false,
    start_date         text NOT NULL DEFAULT '',
    end_date           text NOT NULL DEFAULT '',
    event_status       text NOT NULL DEFAULT '',
    etag               text NOT NULL DEFAULT '',
    event_update_time  timestamptz,
    record_time        timestamptz NOT NULL DEFAULT now(),
    acknowledged       boolean NOT NULL DEFAULT false,
    acknowledge_time   timestamptz
);
CREATE INDEX changes_tenant_seq ON changes (tenant, seq);
CREATE INDEX changes_provider_seq ON changes (tenant, provider_id, seq);
