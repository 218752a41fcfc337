package gmail

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/gmail/internal/mailparse"
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

	c.Sync.MaxBodyBytes = MaxBodyCap
	require.NoError(t, c.validate())
	c.Sync.MaxBodyBytes = MaxBodyCap + 1
	require.ErrorContains(t, c.validate(), "ALGA_GMAIL_MAX_BODY_BYTES must be at most", "both bodies at the cap must fit a feed message")
	require.Greater(t, MaxBodyCap, service.DefaultSyncLimits.MaxBodyBytes)

	c.Sync.MaxBodyBytes = 4096
	c.Sync.MaxRawBytes = 0
	require.ErrorContains(t, c.validate(), "ALGA_GMAIL_MAX_RAW_BYTES")
}

// What mailparse lets a message store besides its bodies — the lists, the single headers (Message-ID,
// In-Reply-To, From, Subject), with room for the ids and labels Gmail sends — fits the allowance the
// body cap leaves, so no mail can make a feed row too large to deliver.
func TestHeaderAllowanceHoldsWhatAMessageStoresBesidesItsBodies(t *testing.T) {
	require.Less(t, mailparse.MaxListBytes+4*mailparse.MaxHeaderBytes+32<<10, headerAllowance)
}
