package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// KeepLease keeps a lease its caller has just taken alive while the caller works — the heartbeat that
// tells a sweeper the worker is alive (see EndAbandoned): renew, which extends the lease by ttl and
// reports whether the caller still holds it, runs every ttl/3 until stop is called. The returned context
// ends when the lease is lost — renew reports it taken by another holder, or keeps failing (the database
// unreachable) until the lease is about to lapse — so the holder stops rather than work on without it.
// stop ends the heartbeat and waits for it; the caller then gives the lease back.
func KeepLease(ctx context.Context, ttl time.Duration, log *slog.Logger, renew func(context.Context) (bool, error)) (context.Context, func()) {
	hctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		renewed := time.Now()
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
			}
			ok, err := renew(hctx)
			switch {
			case hctx.Err() != nil:
				return
			case err == nil && ok:
				renewed = time.Now()
				continue
			case err == nil:
				cancel(errors.New("the lease was taken over"))
				return
			}
			log.WarnContext(hctx, "cannot renew a lease", "err", err)
			if time.Since(renewed) >= ttl-ttl/3 {
				cancel(fmt.Errorf("the lease could not be renewed in time: %w", err))
				return
			}
		}
	}()
	return hctx, func() {
		cancel(nil)
		<-done
	}
}
