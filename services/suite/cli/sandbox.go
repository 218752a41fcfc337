package cli

import (
	"context"
	"io"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

// sandboxCmd runs the Google sandbox standalone (`alga-google sandbox --help` documents its admin API).
func sandboxCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return googlesandbox.Main(ctx, args, stdout)
}
