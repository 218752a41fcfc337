package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A push the service could not store is answered 503 with Retry-After (Pub/Sub and Calendar redeliver
// it), never 2xx and never 500; refusals keep their 4xx.
func TestWebhookStatus(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		code int32
		err  error
		want int
	}{
		"stored":              {code: http.StatusNoContent, want: http.StatusNoContent},
		"database down":       {err: status.Error(codes.Unavailable, "the database is unavailable"), want: http.StatusServiceUnavailable},
		"internal":            {err: status.Error(codes.Internal, "internal error"), want: http.StatusServiceUnavailable},
		"deadline":            {err: status.Error(codes.DeadlineExceeded, "deadline exceeded"), want: http.StatusServiceUnavailable},
		"service unreachable": {err: errors.New("no connection"), want: http.StatusServiceUnavailable},
		"a 500 chosen":        {code: http.StatusInternalServerError, want: http.StatusServiceUnavailable},
		"malformed":           {err: status.Error(codes.InvalidArgument, "bad envelope"), want: http.StatusBadRequest},
		"no token":            {code: http.StatusUnauthorized, want: http.StatusUnauthorized},
	} {
		rec := httptest.NewRecorder()
		writeWebhookStatus(rec, tc.code, tc.err)
		require.Equal(t, tc.want, rec.Code, name)
		if tc.want == http.StatusServiceUnavailable {
			require.Equal(t, webhookRetryAfter, rec.Header().Get("Retry-After"), name)
		} else {
			require.Empty(t, rec.Header().Get("Retry-After"), name)
		}
	}
}
