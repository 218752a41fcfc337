-- Run history of scheduled Google maintenance. Outcomes only: no secret, token or raw Google error is
-- ever stored here. Every row carries its tenant; every query filters by it.

CREATE TABLE runs (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    runner          text NOT NULL CHECK (runner IN ('river', 'temporal')),
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    status          text NOT NULL CHECK (status IN ('succeeded', 'partial', 'failed')),
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    -- Set when the run could not plan or was cut short.
    error_code      text NOT NULL DEFAULT '',
    message         text NOT NULL DEFAULT '',
    provider_count  int NOT NULL DEFAULT 0,
    due_count       int NOT NULL DEFAULT 0,
    failed_count    int NOT NULL DEFAULT 0,
    google_calls    int NOT NULL DEFAULT 0,
    record_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_tenant_start ON runs (tenant, start_time DESC);

-- What a run did for each provider (or orphan connection); position orders them within the run.
CREATE TABLE run_providers (
    run_id       uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position     int NOT NULL,
    tenant       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('gmail', 'calendar')),
    provider_id  text NOT NULL,
    name         text NOT NULL DEFAULT '',
    due          boolean NOT NULL,
    PRIMARY KEY (run_id, position)
);

-- Each step of a provider: done, not due or skipped, with its outcome and why it was (not) due.
CREATE TABLE run_steps (
    run_id         uuid NOT NULL,
    position       int NOT NULL,
    seq            int NOT NULL,
    tenant         text NOT NULL,
    step           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('ok', 'not_due', 'skipped', 'failed')),
    failure_class  text NOT NULL DEFAULT '',
    error_code     text NOT NULL DEFAULT '',
    message        text NOT NULL DEFAULT '',
    remedy         text NOT NULL DEFAULT '',
    reason         text NOT NULL DEFAULT '',
    google_calls   int NOT NULL DEFAULT 0,
    expire_time    timestamptz,
    PRIMARY KEY (run_id, position, seq),
    FOREIGN KEY (run_id, position) REFERENCES run_providers (run_id, position) ON DELETE CASCADE
);

-- One run of a tenant at a time under the River runner (the periodic job and a run-now, on any
-- replica): a lease, taken for the run and released after it; an expired lease (a crashed replica)
-- may be taken over. A lease holds no database connection while the run talks to the other services.
CREATE TABLE tenant_leases (
    tenant       text PRIMARY KEY,
    holder       uuid NOT NULL,
    expire_time  timestamptz NOT NULL
);
