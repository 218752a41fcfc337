package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
