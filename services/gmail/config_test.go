package gmail

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/gmail/internal/service"
	"github.com/algapsa/alga-google/services/platform/config"
)

func TestSyncLimitSettings(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Bind(config.NewBinder(fs))
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, service.DefaultSyncLimits, c.Sync, "unset: the defaults")
	require.NoError(t, c.validate())

	t.Setenv("ALGA_GMAIL_MAX_BODY_BYTES", "4096")
	c = Config{}
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	c.Bind(config.NewBinder(fs))
	require.NoError(t, fs.Parse([]string{"-gmail-sync-batch-messages=5"}))
	require.Equal(t, 4096, c.Sync.MaxBodyBytes)
	require.Equal(t, 5, c.Sync.BatchMessages)

	c.Sync.MaxRawBytes = 0
	require.ErrorContains(t, c.validate(), "ALGA_GMAIL_MAX_RAW_BYTES")
}
