-- The oauth schema: the Google setup flag and its audit, pending authorization states, connections and
-- their health timeline. No secret, token or PKCE verifier is ever stored in plain text here: credentials
-- and tokens live in the secrets service, and the verifier is sealed with a key derived from the state,
-- of which only a hash is kept.

CREATE TABLE settings (
    tenant       text PRIMARY KEY,
    use_same_app boolean NOT NULL DEFAULT true,
    updated_by   text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Who changed the Google setup and when: field names only, never values.
CREATE TABLE config_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    fields     text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX config_audit_tenant ON config_audit (tenant, id);

CREATE TABLE auth_states (
    state_hash      bytea PRIMARY KEY,
    tenant          text NOT NULL,
    user_id         text NOT NULL,
    provider_id     text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('gmail', 'calendar')),
    client_id       text NOT NULL,
    login_hint      text NOT NULL DEFAULT '',
    sealed_verifier bytea NOT NULL,
    binding_hash    bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX auth_states_expires ON auth_states (expires_at);

CREATE TABLE connections (
    id                      uuid PRIMARY KEY,
    tenant                  text NOT NULL,
    kind                    text NOT NULL CHECK (kind IN ('gmail', 'calendar')),
    provider_id             text NOT NULL,
    user_id                 text NOT NULL,
    account_email           text NOT NULL,
    client_id               text NOT NULL,
    scopes                  text[] NOT NULL DEFAULT '{}',
    status                  text NOT NULL,
    status_message          text NOT NULL DEFAULT '',
    remedy                  text NOT NULL DEFAULT '',
    access_token_expires_at timestamptz,
    last_refresh_at         timestamptz,
    consented_at            timestamptz NOT NULL,
    connected_at            timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, kind, provider_id)
);

CREATE TABLE connection_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    tenant        text NOT NULL,
    type          text NOT NULL,
    message       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connection_events_connection ON connection_events (connection_id, id);
