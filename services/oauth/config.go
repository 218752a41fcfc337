package oauth

import "github.com/algapsa/alga-google/services/platform/config"

// Config is the oauth target's own settings.
type Config struct {
	// UIBaseURL is where OAuth callbacks send the browser back to ("" = the canonical base URL).
	UIBaseURL string
}

// Bind declares the settings.
func (c *Config) Bind(b *config.Binder) {
	b.String(&c.UIBaseURL, "ui-base-url", "ALGA_UI_BASE_URL", "", "where OAuth callbacks send the browser back to; defaults to ALGA_BASE_URL")
}
