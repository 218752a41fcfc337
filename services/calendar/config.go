package calendar

import "github.com/algapsa/alga-google/services/platform/config"

// Config is the calendar service's own settings.
type Config struct {
	// ChannelKey is the server key of the channel-token HMACs; empty derives one from the service token
	// key (see channel.NewKeyring).
	ChannelKey string
}

// Bind declares the settings.
func (c *Config) Bind(b *config.Binder) {
	b.String(&c.ChannelKey, "calendar-channel-key", "ALGA_CALENDAR_CHANNEL_KEY", "", "server key (>= 32 bytes) for Calendar channel-token HMACs; defaults to a key derived from the service token key")
}
