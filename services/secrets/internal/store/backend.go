package store

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	"github.com/algapsa/alga-google/services/platform/errs"
)

// Actor is who performs an operation, recorded in the audit trail.
type Actor struct {
	ID   string // user id or service name
	Type string // "user" or "service"
}

// Write sets one secret. ExpectedVersion, when not nil, makes the write conditional (0 = must not exist).
type Write struct {
	Name            string
	Value           string
	ExpectedVersion *int64
}

// Description is the browser-safe view of a secret.
type Description struct {
	Name       string
	Present    bool
	Version    int64
	UpdateTime time.Time
	Hint       string
}

// Value is a decrypted secret.
type Value struct {
	Name    string
	Value   string
	Version int64
}

// Backend is one place secrets live. Every method is scoped to one tenant, which the caller has taken
// from the verified identity and checked with ValidTenant.
type Backend interface {
	// Name identifies the backend in logs and errors ("postgres", "filesystem").
	Name() string
	// Put applies writes and deletes as one unit and returns the descriptions of the written names.
	Put(ctx context.Context, tenant string, actor Actor, writes []Write, deletes []string) ([]Description, error)
	// Describe describes the named secrets (nil = every present secret). Absent names come back with
	// Present=false when asked for by name.
	Describe(ctx context.Context, tenant string, names []string) ([]Description, error)
	// Get returns the values of the named secrets that exist.
	Get(ctx context.Context, tenant string, actor Actor, names []string) ([]Value, error)
	// Delete removes the named secrets and returns the names that existed.
	Delete(ctx context.Context, tenant string, actor Actor, names []string) ([]string, error)
}

var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidTenant reports whether a tenant id is safe to use everywhere, including as a directory name.
func ValidTenant(tenant string) bool { return tenantPattern.MatchString(tenant) }

// Hint is the masked hint shown for a secret: only names ending in "_secret" get one, showing the last
// four characters of values long enough for that to give nothing away (at least 12 characters).
func Hint(name, value string) string {
	if !hasHint(name) || value == "" {
		return ""
	}
	n := utf8.RuneCountInString(value)
	if n < 12 {
		return "••••"
	}
	r := []rune(value)
	return "••••" + string(r[n-4:])
}

func hasHint(name string) bool { return strings.HasSuffix(name, "_secret") }

// ReasonUnreadable is the reason of the DataLoss error for a stored secret that cannot be decrypted
// (classify with errs.HasReason).
const ReasonUnreadable = "SECRET_UNREADABLE"

// errUnreadable marks a stored secret that cannot be decrypted (tampered, moved, or its key is gone).
func errUnreadable(name string, cause error) error {
	return (&errs.Error{Code: codes.DataLoss, Reason: ReasonUnreadable,
		Message: "secret " + name + " cannot be decrypted; it was tampered with or its key is gone — write it again"}).Wrap(cause)
}

// versionConflict is the CAS failure of a conditional write.
func versionConflict(name string, expected, actual int64) error {
	return errs.Conflict("SECRET_VERSION_MISMATCH",
		"secret %s is at version %d, not the expected %d; read it again and retry", name, actual, expected).
		With("name", name)
}
