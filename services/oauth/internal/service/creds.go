package service

import (
	"context"
	"encoding/json"
	"strings"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Secret names of the tenant's Google setup (kept as the platform names them).
const (
	SecretClientID             = "google_client_id"
	SecretClientSecret         = "google_client_secret"
	SecretCalendarClientID     = "google_calendar_client_id"
	SecretCalendarClientSecret = "google_calendar_client_secret"
	SecretProjectID            = "google_project_id"
	SecretServiceAccountKey    = "google_service_account_key"
	tokenSecretPrefix          = "google_oauth_token_"
)

var setupSecretNames = []string{SecretClientID, SecretClientSecret, SecretCalendarClientID, SecretCalendarClientSecret, SecretProjectID, SecretServiceAccountKey}

// TokenSecretName is the secret holding a connection's token JSON.
func TokenSecretName(connectionID string) string { return tokenSecretPrefix + connectionID }

// getSecrets reads plaintext values (acting for the tenant of ctx); absent names are absent from the map.
func (s *core) getSecrets(ctx context.Context, names ...string) (map[string]string, error) {
	resp, err := s.secrets.GetSecrets(ctx, &secretsv1.GetSecretsRequest{Names: names})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(resp.GetSecrets()))
	for _, v := range resp.GetSecrets() {
		out[v.GetName()] = v.GetValue()
	}
	return out, nil
}

// client is one OAuth client of the tenant.
type client struct {
	ID     string
	Secret string
}

// clientNames are the secret names of the OAuth client used for a kind.
func clientNames(kind string) (idName, secretName string) {
	if kind == kindCalendar {
		return SecretCalendarClientID, SecretCalendarClientSecret
	}
	return SecretClientID, SecretClientSecret
}

func kindLabel(kind string) string {
	if kind == kindCalendar {
		return "Calendar"
	}
	return "Gmail"
}

// loadClient reads the tenant's OAuth client for a kind; a missing value fails fast with GoogleNotConfigured.
func (s *core) loadClient(ctx context.Context, kind string) (client, error) {
	idName, secretName := clientNames(kind)
	vals, err := s.getSecrets(ctx, idName, secretName)
	if err != nil {
		return client{}, err
	}
	c := client{ID: vals[idName], Secret: vals[secretName]}
	switch {
	case c.ID == "":
		return c, errs.GoogleNotConfigured("the " + kindLabel(kind) + " OAuth client ID")
	case c.Secret == "":
		return c, errs.GoogleNotConfigured("the " + kindLabel(kind) + " OAuth client secret")
	}
	return c, nil
}

// maskClientID shows a few leading digits and Google's suffix: "1234…apps.googleusercontent.com".
func maskClientID(id string) string {
	if id == "" {
		return ""
	}
	num, _, _ := strings.Cut(id, "-")
	n := min(4, len(num)/3)
	for i := 0; i < n; i++ {
		if num[i] < '0' || num[i] > '9' {
			n = i
			break
		}
	}
	suffix := ""
	if strings.HasSuffix(id, ".apps.googleusercontent.com") {
		suffix = "apps.googleusercontent.com"
	}
	return num[:n] + "…" + suffix
}

// serviceAccountEmail returns the client_email of a stored key ("" when it does not parse).
func serviceAccountEmail(raw string) string {
	if raw == "" {
		return ""
	}
	k, err := oauthv1.ParseServiceAccountKey([]byte(raw))
	if err != nil {
		var loose struct {
			ClientEmail string `json:"client_email"`
		}
		_ = json.Unmarshal([]byte(raw), &loose)
		return loose.ClientEmail
	}
	return k.ClientEmail
}
