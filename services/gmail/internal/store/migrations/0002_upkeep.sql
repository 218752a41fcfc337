-- Scheduled upkeep (the maintenance service's GmailUpkeepService): when users.watch and the Pub/Sub
-- provisioning were last confirmed, which step recorded the provider's error (a later success of a
-- step that covers it clears it), the provider's timeline, and the lease that keeps a reconcile and a
-- push-triggered sync of one mailbox from running at once.

ALTER TABLE providers
    ADD COLUMN last_watch_time              timestamptz,  -- when users.watch last succeeded
    ADD COLUMN last_provisioning_check_time timestamptz,  -- when topic, grant and subscription were last read back right
    -- the diagnostics step that recorded error_code: service_account | topic | publisher_grant |
    -- subscription | token | labels | watch | history ('' when there is no error)
    ADD COLUMN error_step                   text NOT NULL DEFAULT '';

-- What the activations so far confirmed, from their recorded steps.
UPDATE providers p SET
    last_watch_time = (SELECT check_time FROM provider_steps s WHERE s.provider_id = p.id AND s.name = 'watch' AND s.ok),
    last_provisioning_check_time = (SELECT check_time FROM provider_steps s WHERE s.provider_id = p.id AND s.name = 'subscription' AND s.ok),
    error_step = CASE WHEN p.state <> 'error' THEN ''
        ELSE COALESCE((SELECT name FROM provider_steps s WHERE s.provider_id = p.id AND NOT s.ok ORDER BY position LIMIT 1),
                      CASE WHEN p.error_code LIKE 'token\_%' OR p.error_code IN ('reauthorization_required', 'google_not_configured')
                           THEN 'token' ELSE '' END)
    END;

-- The provider's timeline: every activation and upkeep outcome (no secret, no token, no Google body).
CREATE TABLE provider_events (
    id           bigserial PRIMARY KEY,
    tenant       text NOT NULL,
    provider_id  uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    -- activated | activation_failed | <upkeep step>_ok | <upkeep step>_failed | token_failure | sync_failed | recovered
    type         text NOT NULL,
    step         text NOT NULL DEFAULT '',   -- the diagnostics step (failures) or the upkeep step
    error_code   text NOT NULL DEFAULT '',
    message      text NOT NULL DEFAULT '',
    run_id       text NOT NULL DEFAULT '',   -- the maintenance run, when the event came from one
    create_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_events_provider ON provider_events (provider_id, id DESC);

-- A mailbox's history sync runs under a lease, so a reconcile requested by maintenance and a
-- push-triggered River sync never read the same history at once (no duplicate Google calls). The
-- lease expires by itself if its holder dies.
CREATE TABLE sync_leases (
    provider_id  uuid PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    tenant       text NOT NULL,
    holder       text NOT NULL,
    expire_time  timestamptz NOT NULL
);
