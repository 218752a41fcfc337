package oauth

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/config"
)

// TestConfigBind: the setting keeps the name, variable and default it had in the platform's config.
func TestConfigBind(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c Config
	c.Bind(config.NewBinder(fs))
	f := fs.Lookup("ui-base-url")
	require.NotNil(t, f)
	require.Equal(t, "", f.DefValue, "unset: the canonical base URL")
	require.Contains(t, f.Usage, "ALGA_UI_BASE_URL")
	require.NoError(t, fs.Parse([]string{"--ui-base-url", "https://ui.example.com"}))
	require.Equal(t, "https://ui.example.com", c.UIBaseURL)

	t.Setenv("ALGA_UI_BASE_URL", "https://psa.example.com")
	var fromEnv Config
	fromEnv.Bind(config.NewBinder(flag.NewFlagSet("serve", flag.ContinueOnError)))
	require.Equal(t, "https://psa.example.com", fromEnv.UIBaseURL)
}
