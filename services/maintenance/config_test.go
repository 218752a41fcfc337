package maintenance

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/algapsa/alga-google/services/maintenance/maintenancetesting"
	"github.com/algapsa/alga-google/services/platform/config"
)

// bindTemporal parses the worker's settings from the environment the test set, as serve does.
func bindTemporal(t *testing.T, args ...string) (Config, string) {
	t.Helper()
	var c Config
	var help bytes.Buffer
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(&help)
	b := config.NewBinder(fs)
	c.Bind(b)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	fs.PrintDefaults()
	return c, help.String()
}

func TestTemporalAuthSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyFile, []byte("file-key-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("none: plaintext, no credentials", func(t *testing.T) {
		c, _ := bindTemporal(t)
		o, err := c.Temporal.clientOptions("h:7233", "ns")
		if err != nil || o.ConnectionOptions.TLS != nil || o.Credentials != nil || o.HostPort != "h:7233" || o.Namespace != "ns" {
			t.Fatalf("options %+v, %v; want plaintext to h:7233/ns", o, err)
		}
	})
	t.Run("certificate without key is refused", func(t *testing.T) {
		t.Setenv("TEMPORAL_TLS_CERT", filepath.Join(dir, "client.pem"))
		c, _ := bindTemporal(t)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "TEMPORAL_TLS_KEY") {
			t.Fatalf("validate: %v, want TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY refused", err)
		}
	})
	t.Run("key without certificate is refused", func(t *testing.T) {
		c, _ := bindTemporal(t, "-temporal-tls-key", filepath.Join(dir, "client.key"))
		if _, err := c.Temporal.clientOptions("h:7233", "ns"); err == nil || !strings.Contains(err.Error(), "TEMPORAL_TLS_CERT") {
			t.Fatalf("clientOptions: %v, want refused", err)
		}
	})
	t.Run("two sources of the API key are refused", func(t *testing.T) {
		t.Setenv("TEMPORAL_API_KEY", "env-key-0123")
		t.Setenv("TEMPORAL_API_KEY_FILE", keyFile)
		c, _ := bindTemporal(t)
		if err := c.validate(); err == nil || strings.Contains(err.Error(), "env-key-0123") {
			t.Fatalf("validate: %v, want refused without the key", err)
		}
	})
	t.Run("API key from the environment: TLS implied, never in --help", func(t *testing.T) {
		t.Setenv("TEMPORAL_API_KEY", "env-key-0123")
		c, help := bindTemporal(t)
		if strings.Contains(help, "env-key-0123") {
			t.Fatalf("--help shows the API key:\n%s", help)
		}
		o, err := c.Temporal.clientOptions("h:7233", "ns")
		if err != nil || o.Credentials == nil || o.ConnectionOptions.TLS == nil {
			t.Fatalf("options %+v, %v; want TLS and credentials", o, err)
		}
	})
	t.Run("API key from a file", func(t *testing.T) {
		t.Setenv("TEMPORAL_API_KEY_FILE", keyFile)
		c, _ := bindTemporal(t)
		o, err := c.Temporal.clientOptions("h:7233", "ns")
		if err != nil || o.Credentials == nil || o.ConnectionOptions.TLS == nil {
			t.Fatalf("options %+v, %v; want TLS and credentials", o, err)
		}
	})
	t.Run("missing or empty key file, a CA or key pair that is no PEM are errors", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, a := range []TemporalAuth{{APIKeyFile: filepath.Join(dir, "absent")}, {APIKeyFile: empty}, {CA: empty}, {Cert: empty, Key: empty}} {
			if _, err := a.clientOptions("h:7233", "ns"); err == nil {
				t.Errorf("%+v: no error", a)
			}
		}
	})
	t.Run("system roots on request", func(t *testing.T) {
		t.Setenv("TEMPORAL_TLS", "true")
		t.Setenv("TEMPORAL_TLS_SERVER_NAME", "ns.tmprl.cloud")
		c, _ := bindTemporal(t)
		o, err := c.Temporal.clientOptions("h:7233", "ns")
		if err != nil || o.ConnectionOptions.TLS == nil || o.ConnectionOptions.TLS.ServerName != "ns.tmprl.cloud" || o.ConnectionOptions.TLS.RootCAs != nil {
			t.Fatalf("options %+v, %v", o, err)
		}
	})
}

// The options without any TLS setting still reach a plaintext dev server; with TLS on, the same dial
// fails — the settings do reach the connection.
func TestTemporalDialDevServer(t *testing.T) {
	addr, _ := maintenancetesting.StartTemporal(t)
	dial := func(a TemporalAuth) error {
		o, err := a.clientOptions(addr, maintenancetesting.Namespace)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, o)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
	if err := dial(TemporalAuth{}); err != nil {
		t.Fatalf("plaintext dial to the dev server: %v", err)
	}
	if err := dial(TemporalAuth{TLS: true}); err == nil {
		t.Fatal("a TLS dial to the plaintext dev server succeeded: the TLS setting is not applied")
	}
}
