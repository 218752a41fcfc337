// Package config reads the suite's configuration from environment variables with matching flags.
// Every setting has one flag and one variable; `--help` prints both with the default and what it does.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything a target may need. Targets read only their own part.
type Config struct {
	DatabaseURL string
	BaseURL     string
	HTTPAddr    string
	GRPCAddr    string

	AuthHS256Key    string
	AuthJWKS        string
	AuthIssuer      string
	AuthAudience    string
	ServiceTokenKey string

	SecretsKEK     string
	SecretsKEKFile string
	SecretsKEKID   string
	// SecretsKEKPrevious lists older KEKs ("id:base64,...") still accepted while a rotation is under way.
	SecretsKEKPrevious string
	SecretsBackend     string
	SecretsFSBase      string

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

	CalendarChannelKey string
	UIBaseURL          string

	LogLevel        string
	ShutdownTimeout time.Duration
	Dev             bool
}

type setting struct {
	flag, env, def, help string
	target               *string
}

func (c *Config) settings() []setting {
	return []setting{
		{"database-url", "DATABASE_URL", "", "PostgreSQL connection URL (make run creates a private cluster under .data/ when unset)", &c.DatabaseURL},
		{"base-url", "ALGA_BASE_URL", "", "canonical public URL (https, no path); every redirect URI, push endpoint and audience derives from it", &c.BaseURL},
		{"http-addr", "ALGA_HTTP_ADDR", ":8080", "HTTP listen address of the gateway", &c.HTTPAddr},
		{"grpc-addr", "ALGA_GRPC_ADDR", ":9090", "gRPC listen address of the services", &c.GRPCAddr},
		{"auth-hs256-key", "ALGA_AUTH_HS256_KEY", "", "shared key (>= 32 bytes) verifying HS256 user tokens", &c.AuthHS256Key},
		{"auth-jwks", "ALGA_AUTH_JWKS", "", "JWKS file path or URL verifying asymmetric user tokens", &c.AuthJWKS},
		{"auth-issuer", "ALGA_AUTH_ISSUER", "alga-psa", "required iss of user tokens", &c.AuthIssuer},
		{"auth-audience", "ALGA_AUTH_AUDIENCE", "alga-google", "required aud of every token", &c.AuthAudience},
		{"service-token-key", "ALGA_SERVICE_TOKEN_KEY", "", "key (>= 32 bytes) signing service-to-service tokens; defaults to ALGA_AUTH_HS256_KEY", &c.ServiceTokenKey},
		{"secrets-kek", "ALGA_SECRETS_KEK", "", "base64 of the 32-byte key-encryption key of the secrets service", &c.SecretsKEK},
		{"secrets-kek-file", "ALGA_SECRETS_KEK_FILE", "", "file holding the base64 KEK (Kubernetes secret mount)", &c.SecretsKEKFile},
		{"secrets-kek-id", "ALGA_SECRETS_KEK_ID", "kek-1", "identifier of the current KEK (recorded beside every wrapped data key)", &c.SecretsKEKID},
		{"secrets-kek-previous", "ALGA_SECRETS_KEK_PREVIOUS", "", "older KEKs still accepted during a rotation, as id:base64[,id:base64…]; rotate-kek re-wraps from them", &c.SecretsKEKPrevious},
		{"secrets-backend", "ALGA_SECRETS_BACKEND", "postgres", "secret store: postgres, filesystem, or a read chain like postgres,filesystem", &c.SecretsBackend},
		{"secrets-fs-base", "ALGA_SECRETS_FS_BASE", "", "base directory of the filesystem backend (<base>/tenants/<tenant>/<name>)", &c.SecretsFSBase},
		{"google-api-root", "ALGA_GOOGLE_API_ROOT", "", "root URL for every Google HTTP API (a Google-compatible emulator); unset = real Google", &c.GoogleAPIRoot},
		{"pubsub-emulator-host", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator; unset = real Pub/Sub", &c.PubSubEmulatorHost},
		{"job-runner", "ALGA_JOB_RUNNER", "river", "scheduled upkeep runner: river (embedded) or temporal", &c.JobRunner},
		{"temporal-address", "TEMPORAL_ADDRESS", "localhost:7233", "Temporal frontend address (job runner temporal)", &c.TemporalAddress},
		{"temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace", &c.TemporalNamespace},
		{"secrets-addr", "ALGA_SECRETS_ADDR", "localhost:9090", "gRPC address of the secrets target when not in this process", &c.SecretsAddr},
		{"oauth-addr", "ALGA_OAUTH_ADDR", "localhost:9090", "gRPC address of the oauth target when not in this process", &c.OAuthAddr},
		{"gmail-addr", "ALGA_GMAIL_ADDR", "localhost:9090", "gRPC address of the gmail target when not in this process", &c.GmailAddr},
		{"calendar-addr", "ALGA_CALENDAR_ADDR", "localhost:9090", "gRPC address of the calendar target when not in this process", &c.CalendarAddr},
		{"calendar-channel-key", "ALGA_CALENDAR_CHANNEL_KEY", "", "server key (>= 32 bytes) for Calendar channel-token HMACs; defaults to a key derived from the service token key", &c.CalendarChannelKey},
		{"ui-base-url", "ALGA_UI_BASE_URL", "", "where OAuth callbacks send the browser back to; defaults to ALGA_BASE_URL", &c.UIBaseURL},
		{"log-level", "ALGA_LOG_LEVEL", "info", "debug, info, warn or error", &c.LogLevel},
	}
}

// Bind registers every setting on fs, with the environment (or the built-in default) as the flag default.
func (c *Config) Bind(fs *flag.FlagSet) {
	for _, s := range c.settings() {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		fs.StringVar(s.target, s.flag, def, fmt.Sprintf("%s (env %s)", s.help, s.env))
	}
	shutdown := 20 * time.Second
	if v, ok := os.LookupEnv("ALGA_SHUTDOWN_TIMEOUT"); ok {
		if d, err := time.ParseDuration(v); err == nil {
			shutdown = d
		}
	}
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", shutdown, "how long graceful shutdown may take (env ALGA_SHUTDOWN_TIMEOUT)")
	dev, _ := strconv.ParseBool(os.Getenv("ALGA_DEV"))
	fs.BoolVar(&c.Dev, "dev", dev, "development mode: plain-http loopback base URL, in-process Google sandbox, dev sign-in (env ALGA_DEV)")
}

// ServiceKey returns the key signing service tokens.
func (c *Config) ServiceKey() []byte {
	if c.ServiceTokenKey != "" {
		return []byte(c.ServiceTokenKey)
	}
	return []byte(c.AuthHS256Key)
}

// KEK returns the decoded key-encryption key of the secrets service.
func (c *Config) KEK() ([]byte, error) {
	raw := c.SecretsKEK
	if raw == "" && c.SecretsKEKFile != "" {
		b, err := os.ReadFile(c.SecretsKEKFile)
		if err != nil {
			return nil, fmt.Errorf("reading ALGA_SECRETS_KEK_FILE: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	}
	if raw == "" {
		return nil, errors.New("ALGA_SECRETS_KEK or ALGA_SECRETS_KEK_FILE is required by the secrets target")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) != 32 {
		return nil, errors.New("ALGA_SECRETS_KEK must be the base64 encoding of exactly 32 bytes")
	}
	return key, nil
}
