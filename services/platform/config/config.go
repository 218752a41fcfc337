// Package config reads the suite's configuration from environment variables with matching flags.
// Every setting has one flag and one variable; `--help` prints both with the default and what it does.
package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Config is the settings every target shares: the database, the public URL and listeners, identity,
// Google's endpoints, peers and logging. A service's own settings (the secrets KEK, the calendar
// channel key, …) live in that service's Config, bound beside its code (see Binder).
type Config struct {
	DatabaseURL string
	BaseURL     string
	HTTPAddr    string
	GRPCAddr    string
	// MetricsAddr is the listener of /metrics, apart from the public one ("" = none).
	MetricsAddr string
	// GRPCTLSCert, GRPCTLSKey and GRPCTLSCA: TLS (mutual with a CA) of gRPC between targets.
	GRPCTLSCert string
	GRPCTLSKey  string
	GRPCTLSCA   string
	// GRPCReflection serves gRPC reflection outside --dev too.
	GRPCReflection bool
	// HTTPReadTimeout, HTTPWriteTimeout and HTTPIdleTimeout bound the public HTTP server's requests.
	HTTPReadTimeout  time.Duration
	HTTPWriteTimeout time.Duration
	HTTPIdleTimeout  time.Duration

	AuthHS256Key    string
	AuthJWKS        string
	AuthIssuer      string
	AuthAudience    string
	ServiceTokenKey string
	// AuthJWKSMaxAge and AuthJWKSMinInterval: how long a fetched JWKS is trusted at most, and the least
	// time between two fetches.
	AuthJWKSMaxAge      time.Duration
	AuthJWKSMinInterval time.Duration

	GoogleAPIRoot      string
	PubSubEmulatorHost string

	JobRunner         string
	TemporalAddress   string
	TemporalNamespace string

	// Peer gRPC addresses for the distributed mode; ignored by targets served in the same process.
	SecretsAddr  string
	OAuthAddr    string
	GmailAddr    string
	CalendarAddr string
	WorkerAddr   string

	// UIBaseURL is where the browser goes back to after an OAuth callback (the oauth service builds the
	// redirect; the gateway falls back to it when oauth cannot be reached).
	UIBaseURL string

	LogLevel        string
	ShutdownTimeout time.Duration
	Dev             bool
}

// Bind declares the shared settings.
func (c *Config) Bind(b *Binder) {
	b.String(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL connection URL (make run creates a private cluster under .data/ when unset)")
	b.String(&c.BaseURL, "base-url", "ALGA_BASE_URL", "", "canonical public URL (https, no path); every redirect URI, push endpoint and audience derives from it")
	b.String(&c.HTTPAddr, "http-addr", "ALGA_HTTP_ADDR", ":8080", "HTTP listen address of the gateway")
	b.String(&c.GRPCAddr, "grpc-addr", "ALGA_GRPC_ADDR", ":9090", "gRPC listen address of the services")
	b.String(&c.GRPCTLSCert, "grpc-tls-cert", "ALGA_GRPC_TLS_CERT", "", "PEM certificate the gRPC server serves with and peer calls present (TLS between targets); unset = plaintext")
	b.String(&c.GRPCTLSKey, "grpc-tls-key", "ALGA_GRPC_TLS_KEY", "", "PEM private key of ALGA_GRPC_TLS_CERT")
	b.String(&c.GRPCTLSCA, "grpc-tls-ca", "ALGA_GRPC_TLS_CA", "", "PEM CA bundle verifying peers: with it, gRPC is mutual TLS (servers require a client certificate it signed)")
	b.Bool(&c.GRPCReflection, "grpc-reflection", "ALGA_GRPC_REFLECTION", false, "serve gRPC reflection (always on in --dev)")
	b.String(&c.MetricsAddr, "metrics-addr", "ALGA_METRICS_ADDR", ":9091", "listen address of /metrics (Prometheus), apart from the public HTTP listener; empty = no metrics listener")
	b.Duration(&c.HTTPReadTimeout, "http-read-timeout", "ALGA_HTTP_READ_TIMEOUT", 30*time.Second, "longest the HTTP server reads one request (headers and body)")
	b.Duration(&c.HTTPWriteTimeout, "http-write-timeout", "ALGA_HTTP_WRITE_TIMEOUT", 2*time.Minute, "longest one HTTP response may take (no endpoint streams over HTTP)")
	b.Duration(&c.HTTPIdleTimeout, "http-idle-timeout", "ALGA_HTTP_IDLE_TIMEOUT", 2*time.Minute, "how long an idle keep-alive HTTP connection stays open")
	b.String(&c.AuthHS256Key, "auth-hs256-key", "ALGA_AUTH_HS256_KEY", "", "shared key (>= 32 bytes) verifying HS256 user tokens")
	b.String(&c.AuthJWKS, "auth-jwks", "ALGA_AUTH_JWKS", "", "JWKS file path or URL verifying asymmetric user tokens")
	b.Duration(&c.AuthJWKSMaxAge, "auth-jwks-max-age", "ALGA_AUTH_JWKS_MAX_AGE", time.Hour, "longest a fetched JWKS is trusted (a shorter Cache-Control max-age wins); keys it no longer lists stop verifying then")
	b.Duration(&c.AuthJWKSMinInterval, "auth-jwks-min-interval", "ALGA_AUTH_JWKS_MIN_INTERVAL", time.Minute, "least time between two JWKS fetches (an unknown key id or an expired set asks for one)")
	b.String(&c.AuthIssuer, "auth-issuer", "ALGA_AUTH_ISSUER", "alga-psa", "required iss of user tokens")
	b.String(&c.AuthAudience, "auth-audience", "ALGA_AUTH_AUDIENCE", "alga-google", "required aud of every token")
	b.String(&c.ServiceTokenKey, "service-token-key", "ALGA_SERVICE_TOKEN_KEY", "", "key (>= 32 bytes) signing service-to-service tokens; required, and different from ALGA_AUTH_HS256_KEY (--dev derives one when unset)")
	b.String(&c.GoogleAPIRoot, "google-api-root", "ALGA_GOOGLE_API_ROOT", "", "root URL for every Google HTTP API (a Google-compatible emulator); unset = real Google")
	b.String(&c.PubSubEmulatorHost, "pubsub-emulator-host", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator; unset = real Pub/Sub")
	b.String(&c.JobRunner, "job-runner", "ALGA_JOB_RUNNER", "river", "scheduled upkeep runner: river (embedded) or temporal")
	b.String(&c.TemporalAddress, "temporal-address", "TEMPORAL_ADDRESS", "localhost:7233", "Temporal frontend address (job runner temporal)")
	b.String(&c.TemporalNamespace, "temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
	for _, p := range peerAddrs {
		b.String(p.field(c), p.target+"-addr", p.env, "localhost:9090", "gRPC address of the "+p.what+" when not in this process")
	}
	b.String(&c.UIBaseURL, "ui-base-url", "ALGA_UI_BASE_URL", "", "where OAuth callbacks send the browser back to; defaults to ALGA_BASE_URL")
	b.String(&c.LogLevel, "log-level", "ALGA_LOG_LEVEL", "info", "debug, info, warn or error")
	b.Duration(&c.ShutdownTimeout, "shutdown-timeout", "ALGA_SHUTDOWN_TIMEOUT", 20*time.Second, "how long graceful shutdown may take")
	b.Bool(&c.Dev, "dev", "ALGA_DEV", false, "development mode: plain-http loopback base URL, in-process Google sandbox, dev sign-in, text logs")
}

// peerAddrs declares each peer address setting once, by the name of the target it locates (the names
// of platform/target, which imports this package): Bind declares them, PeerAddrEnv names them.
var peerAddrs = []struct {
	target, env, what string
	field             func(*Config) *string
}{
	{"secrets", "ALGA_SECRETS_ADDR", "secrets target", func(c *Config) *string { return &c.SecretsAddr }},
	{"oauth", "ALGA_OAUTH_ADDR", "oauth target", func(c *Config) *string { return &c.OAuthAddr }},
	{"gmail", "ALGA_GMAIL_ADDR", "gmail target", func(c *Config) *string { return &c.GmailAddr }},
	{"calendar", "ALGA_CALENDAR_ADDR", "calendar target", func(c *Config) *string { return &c.CalendarAddr }},
	{"worker", "ALGA_WORKER_ADDR", "worker (maintenance) target", func(c *Config) *string { return &c.WorkerAddr }},
}

// PeerAddrEnv is the environment variable holding the gRPC address of peer target name, when it does
// not run in the same process; "" for a target nobody dials (the gateway). What a deployment must set
// (app.RequiredSettings, the manifests in deploy/) comes from here.
func PeerAddrEnv(target string) string {
	for _, p := range peerAddrs {
		if p.target == target {
			return p.env
		}
	}
	return ""
}

// ServiceKey returns the key signing service tokens: ALGA_SERVICE_TOKEN_KEY, or — in --dev only, when
// it is unset — a key derived from ALGA_AUTH_HS256_KEY (distinct from it, stable across restarts, so
// `alga-google token --service` agrees with a running --dev suite). Nil when there is none.
func (c *Config) ServiceKey() []byte {
	if c.ServiceTokenKey != "" {
		return []byte(c.ServiceTokenKey)
	}
	if c.Dev && c.AuthHS256Key != "" {
		m := hmac.New(sha256.New, []byte(c.AuthHS256Key))
		m.Write([]byte("alga-google --dev service token key"))
		return []byte(hex.EncodeToString(m.Sum(nil)))
	}
	return nil
}

// CheckServiceKey refuses a missing service key outside --dev, a short one, and one equal to the user
// token key: whoever can mint user tokens must not be able to mint service tokens (which read secrets
// and Google tokens of any tenant).
func (c *Config) CheckServiceKey() error {
	key := c.ServiceKey()
	switch {
	case len(key) == 0 && c.Dev:
		return errors.New("ALGA_SERVICE_TOKEN_KEY is required (--dev derives one from ALGA_AUTH_HS256_KEY, which is not set either)")
	case len(key) == 0:
		return errors.New("ALGA_SERVICE_TOKEN_KEY is required: a key (>= 32 bytes) of its own signing service-to-service tokens")
	case len(key) < 32:
		return errors.New("ALGA_SERVICE_TOKEN_KEY must be at least 32 bytes")
	case c.AuthHS256Key != "" && hmac.Equal(key, []byte(c.AuthHS256Key)):
		return errors.New("ALGA_SERVICE_TOKEN_KEY must differ from ALGA_AUTH_HS256_KEY: the user token key must not mint service tokens")
	}
	return nil
}
