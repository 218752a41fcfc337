// Hand-written validation for the secrets API, run by the server's validation interceptor before any
// handler sees a request. Not generated: `make generate` only replaces *.pb.go files.
//
// The errors are *FieldError values. They carry their own gRPC status (InvalidArgument with an
// ErrorInfo of reason INVALID_FIELD, domain "alga-google", metadata field=<path>, and a BadRequest field
// violation) — the same shape as the platform's errs.InvalidField, which this module cannot import
// because the platform module depends on gen.

package secretsv1

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// Limits of the secrets API.
const (
	// MaxNameLength is the longest secret name.
	MaxNameLength = 128
	// MaxValueBytes is the largest secret value.
	MaxValueBytes = 64 << 10
	// MaxBatch is the most names or writes one request may carry.
	MaxBatch = 100
	// MaxPageSize is the largest ListSecretAudit page.
	MaxPageSize = 500
	// maxPageToken bounds the opaque page token.
	maxPageToken = 256
)

// FieldError is bad input in one request field (shared by every API: see gen/validation).
type FieldError = validation.FieldError

func invalid(field, format string, args ...any) *FieldError {
	return validation.Invalid(field, format, args...)
}

// ValidateName checks a secret name: ^[a-z0-9][a-z0-9_-]{0,127}$. field names the request field for the error.
// Names are used as file names by the filesystem backend, so nothing path-like can pass.
func ValidateName(field, name string) error {
	if name == "" {
		return invalid(field, "a secret name is required")
	}
	if len(name) > MaxNameLength {
		return invalid(field, "a secret name is at most %d characters", MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return invalid(field, "a secret name uses lowercase letters, digits, '_' and '-', starting with a letter or digit")
		}
	}
	return nil
}

// validateNames checks a list of names: at most MaxBatch, each well formed, no duplicates.
// seen, when not nil, carries names already used elsewhere in the same request.
func validateNames(field string, names []string, seen map[string]string) error {
	if len(names) > MaxBatch {
		return invalid(field, "at most %d names per request", MaxBatch)
	}
	if seen == nil {
		seen = make(map[string]string, len(names))
	}
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := ValidateName(f, n); err != nil {
			return err
		}
		if prev, dup := seen[n]; dup {
			return invalid(f, "%q is already named by %s", n, prev)
		}
		seen[n] = f
	}
	return nil
}

// Validate checks a PutSecretsRequest.
func (r *PutSecretsRequest) Validate() error {
	writes := r.GetWrites()
	if len(writes) == 0 && len(r.GetDeleteNames()) == 0 {
		return invalid("writes", "at least one write or delete name is required")
	}
	if len(writes) > MaxBatch {
		return invalid("writes", "at most %d writes per request", MaxBatch)
	}
	if len(writes)+len(r.GetDeleteNames()) > MaxBatch {
		return invalid("delete_names", "at most %d writes and deletes together per request", MaxBatch)
	}
	seen := make(map[string]string, len(writes)+len(r.GetDeleteNames()))
	for i, w := range writes {
		f := fmt.Sprintf("writes[%d]", i)
		if w == nil {
			return invalid(f, "must not be empty")
		}
		if err := ValidateName(f+".name", w.GetName()); err != nil {
			return err
		}
		if prev, dup := seen[w.GetName()]; dup {
			return invalid(f+".name", "%q is already written by %s", w.GetName(), prev)
		}
		seen[w.GetName()] = f + ".name"
		if len(w.GetValue()) > MaxValueBytes {
			return invalid(f+".value", "a secret value is at most %d bytes", MaxValueBytes)
		}
		if !utf8.ValidString(w.GetValue()) {
			return invalid(f+".value", "must be valid UTF-8")
		}
		if w.ExpectedVersion != nil && w.GetExpectedVersion() < 0 {
			return invalid(f+".expected_version", "must not be negative")
		}
	}
	return validateNames("delete_names", r.GetDeleteNames(), seen)
}

// Validate checks a DescribeSecretsRequest (no names means every secret).
func (r *DescribeSecretsRequest) Validate() error {
	return validateNames("names", r.GetNames(), nil)
}

// Validate checks a GetSecretsRequest.
func (r *GetSecretsRequest) Validate() error {
	if len(r.GetNames()) == 0 {
		return invalid("names", "at least one name is required")
	}
	return validateNames("names", r.GetNames(), nil)
}

// Validate checks a DeleteSecretsRequest.
func (r *DeleteSecretsRequest) Validate() error {
	if len(r.GetNames()) == 0 {
		return invalid("names", "at least one name is required")
	}
	return validateNames("names", r.GetNames(), nil)
}

// Validate checks a ListSecretAuditRequest.
func (r *ListSecretAuditRequest) Validate() error {
	if r.GetName() != "" {
		if err := ValidateName("name", r.GetName()); err != nil {
			return err
		}
	}
	if r.GetPageSize() < 0 || r.GetPageSize() > MaxPageSize {
		return invalid("page_size", "must be between 0 and %d", MaxPageSize)
	}
	if _, ok := AuditPageTokenID(r.GetPageToken()); !ok {
		return invalid("page_token", "is not a token this service issued; start again without one")
	}
	return nil
}

// auditPageTokenPrefix versions the audit page token, which is opaque to clients.
const auditPageTokenPrefix = "audit:v1:"

// AuditPageToken is the ListSecretAudit page token that continues below the audit event beforeID.
func AuditPageToken(beforeID int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(auditPageTokenPrefix + strconv.FormatInt(beforeID, 10)))
}

// AuditPageTokenID returns the audit event id a page token continues below (0 for no token); ok is false
// for anything AuditPageToken did not make. It is the one rule for page_token: Validate refuses what it
// refuses, so a handler reading a validated request's token gets ok.
func AuditPageTokenID(tok string) (beforeID int64, ok bool) {
	if tok == "" {
		return 0, true
	}
	if len(tok) > maxPageToken {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	digits, found := strings.CutPrefix(string(b), auditPageTokenPrefix)
	if !found {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}
