package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A push the service could not store is answered 503 with Retry-After (Pub/Sub and Calendar redeliver
// it), never 2xx and never 500; refusals keep their 4xx and say why in the API's JSON error body; a
// 2xx has no body.
func TestWebhookStatus(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		code     int32
		reason   string
		err      error
		want     int
		wantCode codes.Code
		wantMsg  string
	}{
		"stored":              {code: http.StatusNoContent, want: http.StatusNoContent},
		"acknowledged":        {code: http.StatusOK, reason: "ignored", want: http.StatusOK},
		"database down":       {err: status.Error(codes.Unavailable, "the database is unavailable"), want: http.StatusServiceUnavailable, wantCode: codes.Unavailable, wantMsg: webhookUnavailable},
		"internal":            {err: status.Error(codes.Internal, "pq: relation gmail.x does not exist"), want: http.StatusServiceUnavailable, wantCode: codes.Unavailable, wantMsg: webhookUnavailable},
		"deadline":            {err: status.Error(codes.DeadlineExceeded, "deadline exceeded"), want: http.StatusServiceUnavailable, wantCode: codes.Unavailable, wantMsg: webhookUnavailable},
		"service unreachable": {err: errors.New("no connection"), want: http.StatusServiceUnavailable, wantCode: codes.Unavailable, wantMsg: webhookUnavailable},
		"a 500 chosen":        {code: http.StatusInternalServerError, reason: "boom", want: http.StatusServiceUnavailable, wantCode: codes.Unavailable, wantMsg: webhookUnavailable},
		"malformed":           {err: status.Error(codes.InvalidArgument, "body: bad envelope"), want: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMsg: "body: bad envelope"},
		"no token":            {code: http.StatusUnauthorized, reason: "authorization: no bearer token", want: http.StatusUnauthorized, wantCode: codes.Unauthenticated, wantMsg: "authorization: no bearer token"},
		"wrong channel token": {code: http.StatusForbidden, reason: "X-Goog-Channel-Token: does not match the channel", want: http.StatusForbidden, wantCode: codes.PermissionDenied, wantMsg: "X-Goog-Channel-Token: does not match the channel"},
		"refused, no reason":  {code: http.StatusBadRequest, want: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMsg: "webhook refused: bad request"},
	} {
		rec := httptest.NewRecorder()
		writeWebhookStatus(rec, tc.code, tc.reason, tc.err)
		require.Equal(t, tc.want, rec.Code, name)
		if tc.want == http.StatusServiceUnavailable {
			require.Equal(t, webhookRetryAfter, rec.Header().Get("Retry-After"), name)
		} else {
			require.Empty(t, rec.Header().Get("Retry-After"), name)
		}
		if tc.want < 400 {
			require.Empty(t, rec.Body.Bytes(), name)
			continue
		}
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"), name)
		got := decodeWebhookError(t, rec.Body.Bytes())
		require.Equal(t, int(tc.wantCode), got.Code, name)
		require.Equal(t, tc.wantMsg, got.Message, name)
	}
}

// A long reason quoting request input is cut on a character boundary, and invalid UTF-8 and NULs never
// reach the answer.
func TestWebhookStatusCapsTheReason(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	writeWebhookStatus(rec, http.StatusBadRequest, "body: "+strings.Repeat("é", 500)+"\xff\x00", nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	got := decodeWebhookError(t, rec.Body.Bytes())
	require.True(t, utf8.ValidString(got.Message))
	require.LessOrEqual(t, len(got.Message), webhookReasonLimit+len("…"))
	require.True(t, strings.HasPrefix(got.Message, "body: éé"), got.Message)
	require.True(t, strings.HasSuffix(got.Message, "…"), got.Message)

	rec = httptest.NewRecorder()
	writeWebhookStatus(rec, http.StatusBadRequest, "body: \xff\x00bad", nil)
	require.Equal(t, "body: \uFFFDbad", decodeWebhookError(t, rec.Body.Bytes()).Message)
}

type webhookError struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

func decodeWebhookError(t *testing.T, body []byte) webhookError {
	t.Helper()
	var e webhookError
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotNil(t, e.Details, "the usual error shape has details: %s", body)
	return e
}
