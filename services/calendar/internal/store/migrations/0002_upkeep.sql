-- Scheduled upkeep (the maintenance service's CalendarUpkeepService): a lease serializing channel
-- changes of one provider, the last outcome of each upkeep step (diagnostics) and the provider's
-- timeline. Nothing here holds a secret or a token.

-- A channel change (activation, renewal, recreation) holds the lease until it is done or the lease
-- expires (a crashed holder): no database connection is held while Google answers.
ALTER TABLE providers
    ADD COLUMN channel_lease        text NOT NULL DEFAULT '',
    ADD COLUMN channel_lease_until  timestamptz;

-- The last outcome of each upkeep step: "channel", "delta_sync", "token".
CREATE TABLE provider_steps (
    provider_id   uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    tenant        text NOT NULL,
    name          text NOT NULL,
    ok            boolean NOT NULL,
    error_code    text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT '',
    run_id        text NOT NULL DEFAULT '',
    check_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, name)
);

-- What happened to the provider, newest last (the newest 50 per provider are kept): activations and
-- upkeep outcomes, with the diagnostics step and error code of a failure.
CREATE TABLE provider_timeline (
    seq           bigserial PRIMARY KEY,
    tenant        text NOT NULL,
    provider_id   uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    event_type    text NOT NULL,
    step          text NOT NULL DEFAULT '',
    error_code    text NOT NULL DEFAULT '',
    message       text NOT NULL DEFAULT '',
    run_id        text NOT NULL DEFAULT '',
    create_time   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_timeline_provider ON provider_timeline (tenant, provider_id, seq);
