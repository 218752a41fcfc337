package jobs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// The heartbeat renews every ttl/3 while the holder works and stops when told; the holder's context ends
// when the lease is taken over, or when renewals fail until the lease would lapse.
func TestKeepLease(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	var renewals atomic.Int32
	ctx, stop := jobs.KeepLease(context.Background(), ttl, logging.Discard(), func(context.Context) (bool, error) {
		renewals.Add(1)
		return true, nil
	})
	time.Sleep(4 * ttl)
	require.NoError(t, ctx.Err(), "held while renewed")
	require.GreaterOrEqual(t, renewals.Load(), int32(9))
	stop()
	n := renewals.Load()
	time.Sleep(ttl)
	require.Equal(t, n, renewals.Load(), "no renewal after stop")

	lost, stop := jobs.KeepLease(context.Background(), ttl, logging.Discard(), func(context.Context) (bool, error) { return false, nil })
	defer stop()
	select {
	case <-lost.Done():
		require.ErrorContains(t, context.Cause(lost), "taken over")
	case <-time.After(2 * ttl):
		t.Fatal("a lease taken over must end the holder's context")
	}

	failing, stop2 := jobs.KeepLease(context.Background(), ttl, logging.Discard(), func(context.Context) (bool, error) { return false, errors.New("connection refused") })
	defer stop2()
	select {
	case <-failing.Done():
		require.ErrorContains(t, context.Cause(failing), "renewed in time")
	case <-time.After(2 * ttl):
		t.Fatal("renewals failing until the lease lapses must end the holder's context")
	}
}
