package oauth

import "github.com/algapsa/alga-google/services/platform/config"

// Config is the oauth target's own settings. It has none yet: the UI address the callbacks send the
// browser back to (ALGA_UI_BASE_URL) is shared with the gateway and so is a platform setting.
type Config struct{}

// Bind declares the settings.
func (c *Config) Bind(*config.Binder) {}
