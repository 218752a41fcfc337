// Package validation holds what the hand-written Validate() methods beside the generated code share:
// the error for bad input in one field, and checks several APIs use. FieldError is the suite's only
// field-error type: platform/errs.InvalidField returns it too, and errs.Rewrite passes it through
// (InvalidArgument, an ErrorInfo with reason INVALID_FIELD in domain "alga-google" naming the field, and
// a BadRequest field violation). It lives here because gen cannot import the platform kit.
package validation

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldError is bad input in one request field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// GRPCStatus makes the error an InvalidArgument status naming the field.
func (e *FieldError) GRPCStatus() *status.Status {
	st := status.New(codes.InvalidArgument, e.Error())
	withDetails, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_FIELD", Domain: "alga-google", Metadata: map[string]string{"field": e.Field}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Error()}}},
	)
	if err != nil {
		return st
	}
	return withDetails
}

// Invalid returns a FieldError for field.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// IsUUID reports whether s is a canonical UUID (8-4-4-4-12 hex, any case).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidateID checks a resource id: a UUID. A path such as "p1:connect" reaching a GET route fails here
// rather than deeper down.
func ValidateID(field, id string) error {
	if id == "" {
		return Invalid(field, "is required")
	}
	if !IsUUID(id) {
		return Invalid(field, "must be a UUID such as 0b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a10")
	}
	return nil
}
