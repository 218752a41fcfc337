package maintenance

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/algapsa/alga-google/services/platform/config"
)

// Config is the worker target's own settings. The runner (ALGA_JOB_RUNNER) and Temporal's address and
// namespace (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE) are shared settings (platform config.Config).
type Config struct {
	// Interval is how often each tenant's maintenance runs. Hourly by default: every run acts only on
	// what is due (a watch renewed once a day or when it expires within RenewAhead, …), so a short
	// interval finds a lapse or a revoked grant within the hour without extra Google calls.
	Interval time.Duration
	// RenewAhead: watches and channels expiring within it are renewed.
	RenewAhead time.Duration
	// TokenMargin: a live access token expiring within it is refreshed ahead.
	TokenMargin time.Duration
	// Silence: a mailbox or calendar without a notification for this long is reconciled (Google drops
	// notifications).
	Silence time.Duration
	// TenantConcurrency bounds the providers of one tenant maintained at once.
	TenantConcurrency int
	// Concurrency bounds the tenants maintained at once by one worker process.
	Concurrency int
	// GoogleRate is the per-tenant rate limit toward Google, in calls per second (0 = unlimited).
	GoogleRate int
	// StepTimeout, HeartbeatTimeout and MaxAttempts shape each step (StartToCloseTimeout, heartbeat
	// deadline, retry policy for transient failures).
	StepTimeout      time.Duration
	HeartbeatTimeout time.Duration
	MaxAttempts      int
	// RunTimeout bounds one tenant's run under River.
	RunTimeout time.Duration
	// ReconcileEvery is how often the Temporal schedules are reconciled with the configured tenants.
	ReconcileEvery time.Duration
	// TaskQueue is the Temporal task queue of the workflow and its activities.
	TaskQueue string
	// Temporal is how the worker authenticates to Temporal (TLS, mTLS, API key): Temporal Cloud or a
	// self-hosted cluster behind TLS. All empty: plaintext, as to a local dev server.
	Temporal TemporalAuth

	// RiverTestOnly speeds River up in tests (periodic jobs start sooner). Not a flag.
	RiverTestOnly bool
	// Now replaces the clock of the due decisions in tests. Not a flag.
	Now func() time.Time
	// RetryInterval is the first retry's backoff (doubling after); tests shorten it. Not a flag.
	RetryInterval time.Duration
}

// Bind declares the worker target's settings.
func (c *Config) Bind(b *config.Binder) {
	b.Duration(&c.Interval, "maintenance-interval", "ALGA_MAINTENANCE_INTERVAL", time.Hour, "how often each tenant's Google maintenance runs (each run acts only on what is due)")
	b.Duration(&c.RenewAhead, "maintenance-renew-ahead", "ALGA_MAINTENANCE_RENEW_AHEAD", 24*time.Hour, "renew Gmail watches and Calendar channels that expire within this window")
	b.Duration(&c.TokenMargin, "maintenance-token-margin", "ALGA_MAINTENANCE_TOKEN_MARGIN", 15*time.Minute, "refresh a live access token that expires within this margin (every connection is also refreshed daily)")
	b.Duration(&c.Silence, "maintenance-silence", "ALGA_MAINTENANCE_SILENCE", 6*time.Hour, "reconcile a mailbox or calendar that had no notification or sync for this long")
	b.Int(&c.TenantConcurrency, "maintenance-tenant-concurrency", "ALGA_MAINTENANCE_TENANT_CONCURRENCY", 4, "providers of one tenant maintained at once")
	b.Int(&c.Concurrency, "maintenance-concurrency", "ALGA_MAINTENANCE_CONCURRENCY", 8, "tenants maintained at once by one worker")
	b.Int(&c.GoogleRate, "maintenance-google-rate", "ALGA_MAINTENANCE_GOOGLE_RATE", 10, "per-tenant rate limit toward Google during maintenance, calls per second (0 = unlimited)")
	b.Duration(&c.StepTimeout, "maintenance-step-timeout", "ALGA_MAINTENANCE_STEP_TIMEOUT", 2*time.Minute, "start-to-close timeout of one maintenance step")
	b.Duration(&c.HeartbeatTimeout, "maintenance-heartbeat-timeout", "ALGA_MAINTENANCE_HEARTBEAT_TIMEOUT", 30*time.Second, "heartbeat timeout of a maintenance step (Temporal)")
	b.Int(&c.MaxAttempts, "maintenance-max-attempts", "ALGA_MAINTENANCE_MAX_ATTEMPTS", 3, "attempts of a step that fails transiently (permanent failures are not retried)")
	b.Duration(&c.RunTimeout, "maintenance-run-timeout", "ALGA_MAINTENANCE_RUN_TIMEOUT", 8*time.Minute, "how long one tenant's run may take under River")
	b.Duration(&c.ReconcileEvery, "maintenance-reconcile-every", "ALGA_MAINTENANCE_RECONCILE_EVERY", 5*time.Minute, "how often the Temporal schedules are reconciled with the configured tenants")
	c.Temporal.bind(b)
	b.String(&c.TaskQueue, "temporal-task-queue", "ALGA_TEMPORAL_TASK_QUEUE", "alga-google-maintenance", "Temporal task queue of the maintenance workflows (job runner temporal)")
}

// validate checks the settings Start relies on.
func (c *Config) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ALGA_MAINTENANCE_INTERVAL", c.Interval}, {"ALGA_MAINTENANCE_RENEW_AHEAD", c.RenewAhead},
		{"ALGA_MAINTENANCE_SILENCE", c.Silence}, {"ALGA_MAINTENANCE_STEP_TIMEOUT", c.StepTimeout},
		{"ALGA_MAINTENANCE_HEARTBEAT_TIMEOUT", c.HeartbeatTimeout}, {"ALGA_MAINTENANCE_RUN_TIMEOUT", c.RunTimeout},
		{"ALGA_MAINTENANCE_RECONCILE_EVERY", c.ReconcileEvery},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	if c.TokenMargin < 0 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_TOKEN_MARGIN must not be negative"))
	}
	if c.TenantConcurrency < 1 || c.Concurrency < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_TENANT_CONCURRENCY, ALGA_MAINTENANCE_CONCURRENCY and ALGA_MAINTENANCE_MAX_ATTEMPTS must be at least 1"))
	}
	if c.GoogleRate < 0 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_GOOGLE_RATE must not be negative"))
	}
	if c.TaskQueue == "" {
		errs = append(errs, errors.New("ALGA_TEMPORAL_TASK_QUEUE must not be empty"))
	}
	errs = append(errs, c.Temporal.validate())
	return errors.Join(errs...)
}

// TemporalAuth is the worker's TLS and credentials toward Temporal. The names follow the Temporal
// CLI's environment (TEMPORAL_TLS_CERT, TEMPORAL_API_KEY, …), beside the shared TEMPORAL_ADDRESS.
type TemporalAuth struct {
	// TLS turns TLS on with the system roots when no CA or client certificate is given (a cluster
	// behind a publicly trusted certificate). CA, Cert or an API key turn it on by themselves.
	TLS bool
	// CA is a PEM bundle verifying Temporal's server certificate; empty = the system roots.
	CA string
	// Cert and Key are the PEM client certificate and key of mutual TLS (a Temporal Cloud namespace
	// with mTLS auth); both or neither.
	Cert, Key string
	// ServerName overrides the name verified in the server certificate (default: TEMPORAL_ADDRESS's host).
	ServerName string
	// APIKeyFile names a file holding the API key (a mounted Kubernetes Secret). APIKey is the key
	// itself, from the environment only (TEMPORAL_API_KEY): never a flag, whose value would show in
	// the process list and in --help. At most one of them.
	APIKeyFile string
	APIKey     string
}

func (a *TemporalAuth) bind(b *config.Binder) {
	b.Bool(&a.TLS, "temporal-tls", "TEMPORAL_TLS", false, "TLS to Temporal with the system roots (implied by TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT or an API key)")
	b.String(&a.CA, "temporal-tls-ca", "TEMPORAL_TLS_CA", "", "PEM CA bundle verifying Temporal's server certificate; unset = the system roots")
	b.String(&a.Cert, "temporal-tls-cert", "TEMPORAL_TLS_CERT", "", "PEM client certificate of mutual TLS to Temporal (with TEMPORAL_TLS_KEY)")
	b.String(&a.Key, "temporal-tls-key", "TEMPORAL_TLS_KEY", "", "PEM private key of TEMPORAL_TLS_CERT")
	b.String(&a.ServerName, "temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "", "name verified in Temporal's server certificate; unset = the host of TEMPORAL_ADDRESS")
	b.String(&a.APIKeyFile, "temporal-api-key-file", "TEMPORAL_API_KEY_FILE", "", "file holding the Temporal API key (Temporal Cloud; implies TLS). Or the key itself, from the environment only (env TEMPORAL_API_KEY): it has no flag, whose value the process list would show")
	// The key itself only from the environment: a flag's value is visible to anyone listing processes.
	a.APIKey = os.Getenv("TEMPORAL_API_KEY")
}

// validate refuses what cannot be meant: half a client key pair, or two sources of the API key.
func (a TemporalAuth) validate() error {
	var errs []error
	if (a.Cert == "") != (a.Key == "") {
		errs = append(errs, errors.New("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"))
	}
	if a.APIKey != "" && a.APIKeyFile != "" {
		errs = append(errs, errors.New("set TEMPORAL_API_KEY or TEMPORAL_API_KEY_FILE, not both"))
	}
	return errors.Join(errs...)
}

// clientOptions returns the options the worker dials Temporal with: the address and namespace, TLS
// when asked for (or implied), and the API key as credentials. Errors name the setting and never
// carry the key.
func (a TemporalAuth) clientOptions(hostPort, namespace string) (client.Options, error) {
	conn, creds, err := a.connection()
	if err != nil {
		return client.Options{}, err
	}
	return client.Options{HostPort: hostPort, Namespace: namespace, ConnectionOptions: conn, Credentials: creds}, nil
}

func (a TemporalAuth) connection() (client.ConnectionOptions, client.Credentials, error) {
	var conn client.ConnectionOptions
	if err := a.validate(); err != nil {
		return conn, nil, err
	}
	key := a.APIKey
	if a.APIKeyFile != "" {
		b, err := os.ReadFile(a.APIKeyFile)
		if err != nil {
			return conn, nil, fmt.Errorf("reading TEMPORAL_API_KEY_FILE: %w", err)
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return conn, nil, errors.New("TEMPORAL_API_KEY_FILE is empty")
		}
	}
	var creds client.Credentials
	if key != "" {
		creds = client.NewAPIKeyStaticCredentials(key)
	}
	if !a.TLS && a.CA == "" && a.Cert == "" && key == "" {
		return conn, nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.ServerName}
	if a.CA != "" {
		pem, err := os.ReadFile(a.CA)
		if err != nil {
			return conn, nil, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return conn, nil, fmt.Errorf("TEMPORAL_TLS_CA: no certificate in %s", a.CA)
		}
	}
	if a.Cert != "" {
		cert, err := tls.LoadX509KeyPair(a.Cert, a.Key)
		if err != nil {
			return conn, nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	conn.TLS = t
	return conn, creds, nil
}
