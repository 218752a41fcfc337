package e2e_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// Storm parameters: Gmail answers every API call of tenant A's OAuth client with 429 (Retry-After
// stormRetryAfter) and 503 in turn for stormFor.
const (
	stormFor        = 30 * time.Second
	stormRetryAfter = 2 // seconds
)

// TestGmailStormForOneTenant: a 429/503 storm on Gmail for one tenant's OAuth app for 30 s while mail
// is sent to both tenants. The other tenant's mail latency is unchanged (measured before the storm in
// the same run), the stormed tenant's calls back off (its Gmail requests during the storm stay within
// what Retry-After allows: no hot loop), and after the storm every one of its mails arrives, once.
func TestGmailStormForOneTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	a := e.setupTenant(t, "tenant-storm-a", "acme-storm-a", setupOpts{})
	b := e.setupTenant(t, "tenant-storm-b", "acme-storm-b", setupOpts{})
	const boxA, boxB = "desk@storm-a.test", "desk@storm-b.test"
	pa, pb := e.connectGmail(t, a, boxA), e.connectGmail(t, b, boxB)
	e.waitSyncIdle(t)

	// B's latency before the storm: send → the inbound message in B's feed.
	n := 0
	sendB := func() time.Duration {
		n++
		subject := fmt.Sprintf("B mail %d", n)
		start := time.Now()
		e.deliver(t, boxB, plainEmail(boxB, subject))
		require.Eventually(t, func() bool { return slices.Contains(subjects(e.inbound(t, b.tenant, pb.ID)), subject) },
			20*time.Second, 20*time.Millisecond, "B's mail %q during A's storm", subject)
		return time.Since(start)
	}
	var before, during []time.Duration
	for range 5 {
		before = append(before, sendB())
	}

	// The storm: every Gmail API call of A's client fails, 429 with Retry-After and 503 alternately
	// (the first fault fires on odd calls, the second takes the rest).
	require.NoError(t, e.admin.ResetCounters(e.ctx))
	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "gmail.users.*", ClientID: a.project.ClientID, Rate429: 0.5, RetryAfterSeconds: stormRetryAfter}))
	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "gmail.users.*", ClientID: a.project.ClientID, Rate5xx: 1, Status5xx: 503}))
	stormStart := time.Now()
	var sentA []string
	for time.Since(stormStart) < stormFor {
		subject := fmt.Sprintf("A mail %d", len(sentA)+1)
		e.deliver(t, boxA, plainEmail(boxA, subject))
		sentA = append(sentA, subject)
		during = append(during, sendB())
	}
	callsA := gmailCalls(t, e, a.project.ClientID)
	stormLasted := time.Since(stormStart)
	require.NoError(t, e.admin.ClearFaults(e.ctx))
	stormEnd := time.Now()

	p50Before, p50During := median(before), median(during)
	t.Logf("tenant B mail latency p50: before the storm %v (%d mails), during it %v (%d mails); tenant A Gmail calls during the %v storm: %d for %d mails",
		p50Before, len(before), p50During, len(during), stormLasted.Round(time.Second), callsA, len(sentA))
	require.LessOrEqual(t, p50During, 2*p50Before+time.Second, "tenant A's storm delays tenant B's mail")

	// Backed off: each 429 tells A's calls to wait stormRetryAfter seconds and the calls alternate
	// 429/503, so at most two calls per Retry-After window (plus the first pair) — a hot loop would make
	// hundreds. At least one call shows A kept trying.
	maxCalls := 2*int64(stormLasted/(stormRetryAfter*time.Second)) + 2
	require.Positive(t, callsA)
	require.LessOrEqual(t, callsA, maxCalls, "tenant A's Gmail calls during the storm")

	// Nothing lost: every one of A's mails arrives, once, soon after the storm (A's cool-down is capped
	// at 10 s; its sync job snoozed until it ends).
	require.Eventually(t, func() bool { return len(e.inbound(t, a.tenant, pa.ID)) >= len(sentA) },
		30*time.Second, 50*time.Millisecond, "tenant A's mail after the storm")
	t.Logf("tenant A's %d mails all arrived %v after the storm ended", len(sentA), time.Since(stormEnd).Round(100*time.Millisecond))
	e.waitSyncIdle(t)
	gotA := subjects(e.inbound(t, a.tenant, pa.ID))
	require.ElementsMatch(t, sentA, gotA, "each of A's mails exactly once")
	require.Len(t, e.inbound(t, b.tenant, pb.ID), len(before)+len(during))
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, a, pa.ID).Status, "a storm is no reason to disconnect")
}

// gmailCalls sums the sandbox's Gmail API counters of one OAuth client.
func gmailCalls(t *testing.T, e *env, clientID string) int64 {
	t.Helper()
	c, err := e.admin.Counters(e.ctx)
	require.NoError(t, err)
	var n int64
	for k, v := range c {
		if strings.HasPrefix(k, "gmail.users.") && strings.HasSuffix(k, "|"+clientID) {
			n += v
		}
	}
	return n
}

// median is the middle one of xs (the upper middle of an even count).
func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
