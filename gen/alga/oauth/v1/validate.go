// Hand-written validation for the oauth API, run by the server's validation interceptor before any
// handler sees a request. Not generated: `make generate` only replaces *.pb.go files.
//
// Only checks that need no state live here; the oauth service adds the stateful ones (a service-account
// key against the stored project id, Calendar fields while the stored use-same-app flag is on).
// Errors are *FieldError values carrying their own gRPC status (InvalidArgument, ErrorInfo reason
// INVALID_FIELD, metadata field=<name>, and a BadRequest field violation), the same shape as the platform's
// errs.InvalidField, which this module cannot import.

package oauthv1

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// Limits of the oauth API.
const (
	// MaxServiceAccountKeyBytes bounds a service-account key file (real ones are about 2.3 KiB).
	MaxServiceAccountKeyBytes = 32 << 10
	maxClientSecret           = 512
	maxClientID               = 256
	maxProviderID             = 128
	maxLoginHint              = 320
	maxCallbackValue          = 4096
)

// FieldError is bad input in one request field (shared by every API: see gen/validation).
type FieldError = validation.FieldError

func invalid(field, format string, args ...any) *FieldError {
	return validation.Invalid(field, format, args...)
}

var (
	clientIDPattern  = regexp.MustCompile(`^[0-9]+-[a-zA-Z0-9_-]+\.apps\.googleusercontent\.com$`)
	projectIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
)

// zeroWidth are characters that sneak into values pasted from web pages and documents.
var zeroWidth = strings.NewReplacer("\u200b", "", "\u200c", "", "\u200d", "", "\u2060", "", "\ufeff", "", "\u00ad", "")

// CleanClientID trims an OAuth client id and removes zero-width characters; the cleaned value is stored.
func CleanClientID(s string) string { return strings.TrimSpace(zeroWidth.Replace(s)) }

// CleanSecretValue trims a pasted client secret or project id the same way.
func CleanSecretValue(s string) string { return strings.TrimSpace(zeroWidth.Replace(s)) }

// ValidClientID reports whether a cleaned client id has Google's shape (NUMBER-ID.apps.googleusercontent.com).
func ValidClientID(s string) bool { return len(s) <= maxClientID && clientIDPattern.MatchString(s) }

// ValidProjectID applies Google's rule: 6–30 characters, lowercase letters, digits and hyphens, starting
// with a letter and not ending with a hyphen.
func ValidProjectID(s string) bool { return projectIDPattern.MatchString(s) }

func validateClientID(field string, v *string) error {
	if v == nil {
		return nil
	}
	c := CleanClientID(*v)
	switch {
	case c == "":
		return invalid(field, "the OAuth client ID must not be empty")
	case !ValidClientID(c):
		return invalid(field, "this is not a Google OAuth client ID: it looks like 1234567890-abc123.apps.googleusercontent.com (copy it from Google Cloud Console → APIs & Services → Credentials)")
	}
	return nil
}

func validateClientSecret(field string, v *string) error {
	if v == nil {
		return nil
	}
	c := CleanSecretValue(*v)
	switch {
	case c == "":
		return invalid(field, "the OAuth client secret must not be empty")
	case len(c) > maxClientSecret || !utf8.ValidString(c) || strings.ContainsAny(c, " \t\r\n"):
		return invalid(field, "this is not an OAuth client secret (copy the secret of the Web application client from Google Cloud Console)")
	}
	return nil
}

// ValidateProjectID checks a project id field value (after cleaning).
func ValidateProjectID(field, v string) error {
	c := CleanSecretValue(v)
	if c == "" {
		return invalid(field, "the Google Cloud project ID is required for Gmail (it hosts the Pub/Sub topic)")
	}
	if !ValidProjectID(c) {
		return invalid(field, "%q is not a Google Cloud project ID: 6–30 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen (the ID, not the project name or number)", truncate(c, 40))
	}
	return nil
}

// Validate checks an UpdateGoogleConfigRequest without looking at stored state. Calendar fields while
// use-same-app is on are the service's one rule (it knows the stored flag as well as the requested one).
func (r *UpdateGoogleConfigRequest) Validate() error {
	if err := validateClientID("gmail_client_id", r.GmailClientId); err != nil {
		return err
	}
	if err := validateClientSecret("gmail_client_secret", r.GmailClientSecret); err != nil {
		return err
	}
	if err := validateClientID("calendar_client_id", r.CalendarClientId); err != nil {
		return err
	}
	if err := validateClientSecret("calendar_client_secret", r.CalendarClientSecret); err != nil {
		return err
	}
	if r.ProjectId != nil {
		if err := ValidateProjectID("project_id", *r.ProjectId); err != nil {
			return err
		}
	}
	if r.ServiceAccountKeyJson != nil {
		if _, err := ParseServiceAccountKey([]byte(*r.ServiceAccountKeyJson)); err != nil {
			return invalid("service_account_key_json", "%s", err.Error())
		}
	}
	return nil
}

// ServiceAccountKey is the part of a Google service-account key file the suite uses.
type ServiceAccountKey struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	TokenURI     string `json:"token_uri"`
}

// ParseServiceAccountKey parses and checks a service-account key file (outside input: never panics). Its
// errors say what is wrong without quoting the key.
func ParseServiceAccountKey(raw []byte) (*ServiceAccountKey, error) {
	if len(raw) > MaxServiceAccountKeyBytes {
		return nil, fmt.Errorf("the service-account key is larger than %d KiB: upload the JSON key file Google generated", MaxServiceAccountKeyBytes>>10)
	}
	trimmed := strings.TrimSpace(zeroWidth.Replace(string(raw)))
	if trimmed == "" {
		return nil, errors.New("the service-account key is empty: paste or upload the JSON key file")
	}
	if !utf8.ValidString(trimmed) {
		return nil, errors.New("the service-account key is not text: upload the JSON key file Google generated")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(trimmed), &fields); err != nil {
		return nil, errors.New("the service-account key is not valid JSON: upload the key file exactly as Google generated it (IAM & Admin → Service accounts → Keys → Add key → JSON)")
	}
	var k ServiceAccountKey
	for name, dst := range map[string]*string{
		"type": &k.Type, "project_id": &k.ProjectID, "private_key_id": &k.PrivateKeyID, "private_key": &k.PrivateKey,
		"client_email": &k.ClientEmail, "client_id": &k.ClientID, "token_uri": &k.TokenURI,
	} {
		v, ok := fields[name]
		if !ok || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, fmt.Errorf("the service-account key field %q must be a string", name)
		}
	}
	switch {
	case k.Type != "service_account":
		if k.Type == "" {
			return nil, errors.New("this JSON is not a service-account key (it has no \"type\": \"service_account\"); an OAuth client JSON does not belong here")
		}
		return nil, fmt.Errorf("this JSON is a %q credential, not a service-account key (\"type\": \"service_account\")", truncate(k.Type, 40))
	case strings.TrimSpace(k.ClientEmail) == "":
		return nil, errors.New("the service-account key has no client_email")
	case !strings.Contains(k.ClientEmail, "@") || len(k.ClientEmail) > 320:
		return nil, errors.New("the service-account key's client_email is not an email address")
	case strings.TrimSpace(k.PrivateKey) == "":
		return nil, errors.New("the service-account key has no private_key")
	case !strings.Contains(k.PrivateKey, "PRIVATE KEY"):
		return nil, errors.New("the service-account key's private_key is not a PEM private key")
	case strings.TrimSpace(k.ProjectID) == "":
		return nil, errors.New("the service-account key has no project_id")
	}
	return &k, nil
}

// Validate checks a BeginAuthorizationRequest.
func (r *BeginAuthorizationRequest) Validate() error {
	if err := validateKind("kind", r.Kind); err != nil {
		return err
	}
	if err := validateProviderID("provider_id", r.ProviderId); err != nil {
		return err
	}
	if len(r.LoginHint) > maxLoginHint || !utf8.ValidString(r.LoginHint) || strings.ContainsAny(r.LoginHint, " \t\r\n") {
		return invalid("login_hint", "must be an email address")
	}
	return nil
}

// Validate checks a CompleteAuthorizationRequest. Values come from the browser's query string; the
// service turns a missing state into the state_invalid status rather than an error.
func (r *CompleteAuthorizationRequest) Validate() error {
	if err := validateKind("callback_kind", r.CallbackKind); err != nil {
		return err
	}
	for field, v := range map[string]string{"state": r.State, "code": r.Code, "error": r.Error, "browser_binding": r.BrowserBinding} {
		if len(v) > maxCallbackValue {
			return invalid(field, "is too long")
		}
	}
	return nil
}

// Validate checks a GetAccessTokenRequest.
func (r *GetAccessTokenRequest) Validate() error {
	if err := validateKind("kind", r.Kind); err != nil {
		return err
	}
	if err := validateProviderID("provider_id", r.ProviderId); err != nil {
		return err
	}
	if r.MinValiditySeconds < 0 || r.MinValiditySeconds > 3000 {
		return invalid("min_validity_seconds", "must be between 0 and 3000")
	}
	return nil
}

// Validate checks a GetConnectionRequest.
func (r *GetConnectionRequest) Validate() error {
	if err := validateKind("kind", r.Kind); err != nil {
		return err
	}
	return validateProviderID("provider_id", r.ProviderId)
}

// Validate checks a DeleteConnectionRequest.
func (r *DeleteConnectionRequest) Validate() error {
	if err := validateKind("kind", r.Kind); err != nil {
		return err
	}
	return validateProviderID("provider_id", r.ProviderId)
}

// Validate checks a ListConnectionsRequest (kind unspecified = every kind).
func (r *ListConnectionsRequest) Validate() error {
	if _, ok := ProviderKind_name[int32(r.Kind)]; !ok {
		return invalid("kind", "unknown provider kind %d", r.Kind)
	}
	return nil
}

func validateKind(field string, k ProviderKind) error {
	if k != ProviderKind_PROVIDER_KIND_GMAIL && k != ProviderKind_PROVIDER_KIND_CALENDAR {
		return invalid(field, "must be PROVIDER_KIND_GMAIL or PROVIDER_KIND_CALENDAR")
	}
	return nil
}

func validateProviderID(field, v string) error {
	switch {
	case v == "":
		return invalid(field, "is required")
	case len(v) > maxProviderID:
		return invalid(field, "is longer than %d characters", maxProviderID)
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return invalid(field, "may contain only letters, digits, '-' and '_'")
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
