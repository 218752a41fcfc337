package config

import (
	"flag"
	"testing"
)

// Each peer address setting is bound under the name PeerAddrEnv gives, into its own field.
func TestPeerAddrSettings(t *testing.T) {
	t.Setenv("ALGA_GMAIL_ADDR", "gmail:9090")
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Bind(NewBinder(fs))
	if err := fs.Parse([]string{"-worker-addr", "worker:9090"}); err != nil {
		t.Fatal(err)
	}
	if c.GmailAddr != "gmail:9090" || c.WorkerAddr != "worker:9090" || c.SecretsAddr != "localhost:9090" || c.OAuthAddr != "localhost:9090" || c.CalendarAddr != "localhost:9090" {
		t.Fatalf("peer addresses %q %q %q %q %q", c.SecretsAddr, c.OAuthAddr, c.GmailAddr, c.CalendarAddr, c.WorkerAddr)
	}
	for target, env := range map[string]string{"secrets": "ALGA_SECRETS_ADDR", "worker": "ALGA_WORKER_ADDR", "gateway": ""} {
		if got := PeerAddrEnv(target); got != env {
			t.Errorf("PeerAddrEnv(%q) = %q, want %q", target, got, env)
		}
	}
}
