package gmail

import (
	"errors"
	"fmt"

	"github.com/algapsa/alga-google/services/gmail/internal/service"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/feed"
)

// headerAllowance is what a stored message may hold besides its two bodies (addresses, subject,
// references, attachment names) in the feed's row bound: mailparse keeps the lists within
// mailparse.MaxListBytes and each header within mailparse.MaxHeaderBytes
// (TestHeaderAllowanceHoldsWhatAMessageStoresBesidesItsBodies).
const headerAllowance = 256 << 10

// MaxBodyCap is the largest ALGA_GMAIL_MAX_BODY_BYTES: a message with both bodies (text and HTML) at the
// cap must still fit one gRPC message of the inbound feed alone (feed.MaxRowBytes), or a consumer could
// never read past it.
const MaxBodyCap = (feed.MaxRowBytes - headerAllowance) / 2

// Config is the gmail target's own settings: what bounds a history sync's memory. Its other tunables —
// how long a mailbox settles before a sync, how often the sweeper runs, River's concurrency — are
// defaults in internal/service, fixed rather than exposed as flags nobody has needed.
type Config struct {
	Sync service.SyncLimits
}

// Bind declares the gmail target's settings on b.
func (c *Config) Bind(b *config.Binder) {
	d := service.DefaultSyncLimits
	b.Int(&c.Sync.BatchMessages, "gmail-sync-batch-messages", "ALGA_GMAIL_SYNC_BATCH_MESSAGES", d.BatchMessages,
		"messages a Gmail sync fetches and parses before storing them in one transaction (its memory bound, with the batch bytes)")
	b.Int(&c.Sync.BatchBytes, "gmail-sync-batch-bytes", "ALGA_GMAIL_SYNC_BATCH_BYTES", d.BatchBytes,
		"parsed bytes a Gmail sync holds before storing them (a batch ends at whichever bound comes first)")
	b.Int(&c.Sync.MaxBodyBytes, "gmail-max-body-bytes", "ALGA_GMAIL_MAX_BODY_BYTES", d.MaxBodyBytes,
		fmt.Sprintf("cap of each stored Gmail body (text, HTML), cut on a UTF-8 boundary; the message is marked truncated (at most %d, so a message fits one gRPC message of the inbound feed)", MaxBodyCap))
	b.Int(&c.Sync.MaxRawBytes, "gmail-max-raw-bytes", "ALGA_GMAIL_MAX_RAW_BYTES", d.MaxRawBytes,
		"how much of a raw Gmail message is decoded and parsed; the rest (usually attachments) is not, and the message is marked truncated")
}

// validate checks the settings Start relies on.
func (c *Config) validate() error {
	if c.Sync.BatchMessages < 1 || c.Sync.BatchBytes < 1 || c.Sync.MaxBodyBytes < 1 || c.Sync.MaxRawBytes < 1 {
		return errors.New("ALGA_GMAIL_SYNC_BATCH_MESSAGES, ALGA_GMAIL_SYNC_BATCH_BYTES, ALGA_GMAIL_MAX_BODY_BYTES and ALGA_GMAIL_MAX_RAW_BYTES must be at least 1")
	}
	if c.Sync.MaxBodyBytes > MaxBodyCap {
		return fmt.Errorf("ALGA_GMAIL_MAX_BODY_BYTES must be at most %d: a message with both bodies at the cap must fit the 4 MiB gRPC message a feed consumer receives", MaxBodyCap)
	}
	return nil
}
