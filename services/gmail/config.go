package gmail

import "github.com/algapsa/alga-google/services/platform/config"

// Config is the gmail target's own settings. It declares none today: the gmail target reads only the
// shared settings (database, base URL, Google endpoints, peers), and its tunables — how long a mailbox
// settles before a sync, how often the sweeper runs, River's concurrency — are defaults in
// internal/service, fixed rather than exposed as flags nobody has needed. A setting the target grows
// is declared here, beside the code that reads it.
type Config struct{}

// Bind declares the gmail target's settings on b (none yet; `serve --help` is unchanged).
func (c *Config) Bind(*config.Binder) {}
