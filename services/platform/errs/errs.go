// Package errs holds the domain errors every service returns and the one function that turns them into
// gRPC statuses. Handlers return these (or wrap them); nothing else builds a status by hand.
package errs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/gen/validation"
)

// Domain is the ErrorInfo domain of every error we return.
const Domain = "alga-google"

// Error is a user-actionable error with a gRPC code and a stable reason. Bad input in one field is the
// other domain error, validation.FieldError (shared with the hand-written Validate methods in gen).
type Error struct {
	Code    codes.Code
	Reason  string // stable machine-readable reason, e.g. "GOOGLE_NOT_CONFIGURED"
	Message string // shown to people: say what is wrong and what to do
	Meta    map[string]string
	cause   error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// InvalidField reports bad input in one field: InvalidArgument naming the field (reason INVALID_FIELD,
// a BadRequest field violation). It is the same error the generated requests' Validate methods return.
func InvalidField(field, format string, args ...any) *validation.FieldError {
	return validation.Invalid(field, format, args...)
}

// HasReason reports whether err is (or wraps) a domain error with the given reason.
func HasReason(err error, reason string) bool {
	var de *Error
	return errors.As(err, &de) && de.Reason == reason
}

// NotFound reports a missing resource of the caller's tenant.
func NotFound(what string) *Error {
	return &Error{Code: codes.NotFound, Reason: "NOT_FOUND", Message: what + " not found"}
}

// PermissionDenied reports a caller that lacks a permission.
func PermissionDenied(format string, args ...any) *Error {
	return &Error{Code: codes.PermissionDenied, Reason: "PERMISSION_DENIED", Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated reports a missing or bad credential.
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Code: codes.Unauthenticated, Reason: "UNAUTHENTICATED", Message: fmt.Sprintf(format, args...)}
}

// FailedPrecondition reports a state that prevents the call; reason tells which.
func FailedPrecondition(reason, format string, args ...any) *Error {
	return &Error{Code: codes.FailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports a concurrent modification or a duplicate.
func Conflict(reason, format string, args ...any) *Error {
	return &Error{Code: codes.Aborted, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AlreadyExists reports a duplicate resource.
func AlreadyExists(format string, args ...any) *Error {
	return &Error{Code: codes.AlreadyExists, Reason: "ALREADY_EXISTS", Message: fmt.Sprintf(format, args...)}
}

// Unavailable reports a transient failure of a dependency (Google, a peer service).
func Unavailable(reason, format string, args ...any) *Error {
	return &Error{Code: codes.Unavailable, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a cause that is logged but never shown to callers.
func (e *Error) Wrap(cause error) *Error { c := *e; c.cause = cause; return &c }

// With adds ErrorInfo metadata (never secrets).
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Meta = map[string]string{}
	for k, v := range e.Meta {
		c.Meta[k] = v
	}
	c.Meta[key] = value
	return &c
}

// GoogleNotConfigured is the fail-fast error for a tenant whose Google setup lacks what a call needs.
func GoogleNotConfigured(missing string) *Error {
	return FailedPrecondition("GOOGLE_NOT_CONFIGURED",
		"Google is not configured for this tenant (%s is missing). An administrator can complete it in Settings → Integrations → Communication → Google.", missing).
		With("setup_path", "/settings/integrations/google")
}

// Rewrite turns any error returned by a handler into a gRPC status error: domain errors keep their code,
// message and details; status errors from peers pass through; context errors map to their codes;
// everything else (Postgres, drivers, bugs) is logged whole and answered generically.
func Rewrite(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	var fe *validation.FieldError
	if errors.As(err, &fe) {
		return fe.GRPCStatus().Err()
	}
	var de *Error
	if errors.As(err, &de) {
		if de.cause != nil {
			log.DebugContext(ctx, "request failed", "code", de.Code.String(), "reason", de.Reason, "err", de.cause)
		}
		return toStatus(de)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	// Before the context cases: a connection attempt cut short by the caller's deadline is still the
	// database being unreachable.
	if Unreachable(err) {
		log.WarnContext(ctx, "dependency unreachable", "err", err)
		e := &Error{Code: codes.Unavailable, Reason: "UNAVAILABLE", Message: "a service this call needs is unavailable; retry shortly"}
		if fromPostgres(err) {
			e.Reason, e.Message = "DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly"
		}
		return toStatus(e)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, pgx.ErrNoRows):
		return status.Error(codes.NotFound, "not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "40001" {
		return status.Error(codes.Aborted, "concurrent update, retry")
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// Unreachable reports whether err means PostgreSQL (or another dependency reached over the network)
// could not be reached or went away mid-call — refused or failed connection, a network error, a server
// shutting down, an error pgconn knows happened before anything was sent: a transient failure a caller
// should retry (Unavailable; a webhook answers 503 so Google redelivers), never an Internal error.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var op *net.OpError
	if errors.As(err, &ce) || errors.As(err, &op) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-03: admin or crash shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}

// fromPostgres reports whether err comes from the PostgreSQL driver (not a bare network error of some
// other client).
func fromPostgres(err error) bool {
	var ce *pgconn.ConnectError
	var pgErr *pgconn.PgError
	return errors.As(err, &ce) || errors.As(err, &pgErr) || pgconn.SafeToRetry(err)
}

func toStatus(e *Error) error {
	st := status.New(e.Code, e.Message)
	meta := map[string]string{}
	for k, v := range e.Meta {
		meta[k] = v
	}
	info := &errdetails.ErrorInfo{Reason: e.Reason, Domain: Domain, Metadata: meta}
	withInfo, err := st.WithDetails(info)
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// ReasonOf returns the ErrorInfo reason of a status error (for callers that branch on peer errors).
func ReasonOf(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}
