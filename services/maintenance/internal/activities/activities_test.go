package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/errs"
)

func TestRPCFailureClassification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		status string
		class  string
		code   string
	}{
		{status.Error(codes.Unavailable, "restarting"), upkeep.StatusFailed, upkeep.ClassTransient, "gmail_unavailable"},
		{status.Error(codes.DeadlineExceeded, "slow"), upkeep.StatusFailed, upkeep.ClassTransient, "gmail_unavailable"},
		{status.Error(codes.Internal, "internal error"), upkeep.StatusFailed, upkeep.ClassTransient, "gmail_unavailable"},
		{status.Error(codes.InvalidArgument, "provider_id: bad"), upkeep.StatusFailed, upkeep.ClassPermanent, "gmail_refused"},
		{status.Error(codes.Unimplemented, "not yet"), upkeep.StatusFailed, upkeep.ClassPermanent, "gmail_refused"},
		{status.Error(codes.NotFound, "gone"), upkeep.StatusSkipped, "", ""},
		{errs.Rewrite(context.Background(), nil, errs.GoogleNotConfigured("client id")), upkeep.StatusFailed, upkeep.ClassNotConfigured, "google_not_configured"},
	}
	for _, tc := range cases {
		r := rpcFailure(upkeep.StepWatchRenew, "gmail", tc.err)
		require.Equal(t, tc.status, r.Status, "%v", tc.err)
		require.Equal(t, tc.class, r.FailureClass, "%v", tc.err)
		require.Equal(t, tc.code, r.ErrorCode, "%v", tc.err)
	}
}

func TestStepErrorRoundTrip(t *testing.T) {
	t.Parallel()
	require.NoError(t, StepError(upkeep.StepResult{Step: upkeep.StepWatchRenew, Status: upkeep.StatusOK}))

	perm := upkeep.Failure(upkeep.StepTokenRefresh, upkeep.ClassRevoked, "token_revoked", "revoked", "reconnect")
	err := StepError(perm)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app))
	require.True(t, app.NonRetryable(), "a revoked grant is not retried")
	require.Equal(t, perm, ResultFromError(perm.Step, err))

	tr := upkeep.Failure(upkeep.StepWatchRenew, upkeep.ClassTransient, "google_unavailable", "503", "")
	err = StepError(tr)
	require.True(t, errors.As(err, &app))
	require.False(t, app.NonRetryable())
	require.Equal(t, tr, ResultFromError(tr.Step, err))

	r := ResultFromError(upkeep.StepReconcile, errors.New("boom"))
	require.Equal(t, upkeep.ClassTransient, r.FailureClass)
}

func TestLimiterIsPerTenant(t *testing.T) {
	t.Parallel()
	l := NewLimiter(5, 1)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 3; i++ {
		require.NoError(t, l.Wait(ctx, "slow", 1))
	}
	require.GreaterOrEqual(t, time.Since(start), 350*time.Millisecond, "5/s: the third call waits ~400ms")
	start = time.Now()
	require.NoError(t, l.Wait(ctx, "other", 1))
	require.Less(t, time.Since(start), 50*time.Millisecond, "another tenant does not wait")
	require.NoError(t, NewLimiter(0, 1).Wait(ctx, "x", 100), "0 = unlimited")
}
