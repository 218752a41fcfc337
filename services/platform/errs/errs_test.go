package errs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/logging"
)

func TestRewriteKeepsDomainErrors(t *testing.T) {
	t.Parallel()
	err := errs.Rewrite(context.Background(), logging.Discard(), fmt.Errorf("saving: %w", errs.InvalidField("writes[0].name", "must not be empty")))
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Contains(t, st.Message(), "writes[0].name")
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	require.NotNil(t, info)
	require.Equal(t, "writes[0].name", info.Metadata["field"])
	require.Equal(t, "INVALID_FIELD", errs.ReasonOf(err))
}

func TestRewriteHidesInternals(t *testing.T) {
	t.Parallel()
	pgErr := &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint \"secrets_pkey\""}
	st := status.Convert(errs.Rewrite(context.Background(), logging.Discard(), pgErr))
	require.Equal(t, codes.Internal, st.Code())
	require.NotContains(t, st.Message(), "secrets_pkey")

	st = status.Convert(errs.Rewrite(context.Background(), logging.Discard(), errors.New("boom /etc/passwd")))
	require.Equal(t, "internal error", st.Message())

	st = status.Convert(errs.Rewrite(context.Background(), logging.Discard(), context.DeadlineExceeded))
	require.Equal(t, codes.DeadlineExceeded, st.Code())
	require.NoError(t, errs.Rewrite(context.Background(), logging.Discard(), nil))
}

// A database that cannot be reached (refused, gone mid-call, shutting down) is Unavailable — a
// transient failure the caller retries — while the caller's own deadline stays DeadlineExceeded.
func TestRewriteUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, refused := pgconn.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.Error(t, refused)
	for name, tc := range map[string]struct {
		err    error
		reason string
	}{
		"refused connection": {fmt.Errorf("storing: %w", refused), "DATABASE_UNAVAILABLE"},
		"admin shutdown":     {&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, "DATABASE_UNAVAILABLE"},
		"connection failure": {&pgconn.PgError{Code: "08006", Message: "connection failure"}, "DATABASE_UNAVAILABLE"},
		"gone mid-call":      {fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "UNAVAILABLE"},
	} {
		require.True(t, errs.Unreachable(tc.err), name)
		st := status.Convert(errs.Rewrite(context.Background(), logging.Discard(), tc.err))
		require.Equal(t, codes.Unavailable, st.Code(), name)
		require.Equal(t, tc.reason, errs.ReasonOf(st.Err()), name)
		require.NotContains(t, st.Message(), "127.0.0.1", name)
	}
	netErr := fmt.Errorf("calling a peer: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	require.True(t, errs.Unreachable(netErr))
	require.Equal(t, "UNAVAILABLE", errs.ReasonOf(errs.Rewrite(context.Background(), logging.Discard(), netErr)), "not claimed to be the database")
	require.False(t, errs.Unreachable(&pgconn.PgError{Code: "23505"}))
	require.False(t, errs.Unreachable(context.DeadlineExceeded), "the caller's own deadline")
	require.Equal(t, codes.DeadlineExceeded, status.Code(errs.Rewrite(context.Background(), logging.Discard(), context.DeadlineExceeded)))
}
