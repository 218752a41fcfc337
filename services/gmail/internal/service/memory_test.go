package service

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// peakLiveHeap samples the live heap (as of the latest GC) until stop is called, and returns the peak.
func peakLiveHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var (
		mu   sync.Mutex
		peak uint64
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			mu.Lock()
			peak = max(peak, sample[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// A backlog of large mails — 50 messages of 4 MiB in ONE history page, 200 MiB in all, which anyone
// can send — is synced with the live heap bounded by the batch, not by the backlog: messages are fetched
// and stored 5 at a time, each body cut to 1 MiB (marked truncated), and only 2 MiB of each raw message
// decoded. (Storing the page whole, as before, held every parsed body of the page at once: 200 MiB.)
// The fake Gmail runs in this process, so its per-request copies (the generated mail, its base64 and
// JSON) are counted too.
func TestLargeBacklogSyncsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB through the fake Gmail, the parser and PostgreSQL")
	}
	// Not parallel: the live heap is the process's, so it is measured while no other test runs.
	const (
		messages = 50
		size     = 4 << 20
		bound    = 96 << 20
	)
	b := setup(t, func(o *Options) {
		o.Sync = SyncLimits{BatchMessages: 5, BatchBytes: 8 << 20, MaxBodyBytes: 1 << 20, MaxRawBytes: 2 << 20}
	})
	b.gm.mu.Lock()
	b.gm.pageSize = 500
	b.gm.mu.Unlock()
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	for range messages {
		b.gm.deliverLarge("support@acme.test", size)
	}
	runtime.GC()
	stop := peakLiveHeap()
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "big-1"))
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.messages WHERE provider_id = $1", p.GetId()) == messages
	}, 90*time.Second, 100*time.Millisecond)
	peak := stop()
	t.Logf("backlog %d MiB, peak live heap %.1f MiB (bound %d MiB)", messages*size>>20, float64(peak)/(1<<20), bound>>20)
	require.Less(t, peak, uint64(bound), "the sync's memory is bounded by its batch, not by the backlog")

	var truncated, maxText int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT count(*) FILTER (WHERE truncated), max(octet_length(text_body)) FROM gmail.messages WHERE provider_id = $1",
		p.GetId()).Scan(&truncated, &maxText))
	require.Equal(t, messages, truncated, "every cut message is marked truncated")
	require.LessOrEqual(t, maxText, 1<<20)
	require.Greater(t, maxText, 1<<20-100, "cut at the cap, not far below it")
}
