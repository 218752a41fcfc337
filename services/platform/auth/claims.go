// Package auth verifies and mints the JWTs every caller presents, and carries the verified identity
// through a request's context. The tenant of a request comes only from here.
package auth

import (
	"context"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// UserType values carried in the user_type claim.
const (
	UserTypeInternal = "internal"
	UserTypeClient   = "client"
)

// PermSystemSettingsUpdate lets a user change the Google setup and manage Gmail providers.
const PermSystemSettingsUpdate = "system_settings:update"

// PermSystemSettingsRead lets a user see system settings such as which tenant secrets exist (names,
// versions, the last-4 hint of a client secret); PermSystemSettingsUpdate implies it.
const PermSystemSettingsRead = "system_settings:read"

// Service identities: the svc claim of a service token names its caller. Each target signs its peer
// calls as its own identity, and each internal RPC declares which identities may call it
// (grpcserver.Access), so a token of one identity reaches only that identity's RPCs.
const (
	// SvcGateway is the HTTP edge: it reaches only the OAuth callback and the webhook-ingest RPCs.
	SvcGateway = "gateway"
	// SvcSecrets is the secret store (it calls no peer).
	SvcSecrets = "secrets"
	// SvcOAuth is the Google setup and token custody: the only reader of OAuth client secrets.
	SvcOAuth = "oauth"
	// SvcGmail is the Gmail inbound service.
	SvcGmail = "gmail"
	// SvcCalendar is the Google Calendar service.
	SvcCalendar = "calendar"
	// SvcMaintenance is the worker target (scheduled upkeep).
	SvcMaintenance = "maintenance"
	// SvcPlatform is Alga PSA itself, an outside caller consuming inbound mail and calendar changes.
	SvcPlatform = "platform"
	// SvcCLI is the operator's `alga-google maintenance` command.
	SvcCLI = "cli"
)

// Claims is the JWT body shared by user tokens and service tokens.
type Claims struct {
	jwt.RegisteredClaims
	Tenant      string   `json:"tenant,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	UserType    string   `json:"user_type,omitempty"`
	// Service is set only on service tokens: the name of the calling service.
	Service string `json:"svc,omitempty"`
}

// Identity is the verified caller of a request.
type Identity struct {
	// Subject is the user id; for a service acting for a user, that user's id.
	Subject     string
	Tenant      string
	Permissions []string
	UserType    string
	// Service names the calling service; empty for users.
	Service string
}

// IsService reports whether the caller is one of our services rather than a user.
func (id Identity) IsService() bool { return id.Service != "" }

// Has reports whether a user holds a permission. Services hold every permission of the user they act for
// and are otherwise trusted for internal calls, so callers check IsService separately where it matters.
func (id Identity) Has(permission string) bool { return slices.Contains(id.Permissions, permission) }

// clone returns a copy sharing no slice with id.
func (id Identity) clone() Identity {
	id.Permissions = slices.Clone(id.Permissions)
	return id
}

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the verified identity of the request, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
