package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGmailWebhookRejectsBadTokens: pushes for a real subscription with a missing or bad OIDC token are
// answered 401 and store nothing. The suite reaches the sandbox through a proxy whose JWKS also holds a
// "trusted" test key, so each bad claim is signed by a key the suite accepts and is refused for that
// claim alone (a control token with the same key and correct claims is accepted); "another key" is a
// key in no JWKS.
func TestGmailWebhookRejectsBadTokens(t *testing.T) {
	t.Parallel()
	e, sb, trusted, other := newTrustedKeyEnv(t, "e2e-trusted-key", "e2e-other-key")
	ts := e.setupTenant(t, "tenant-wh", "acme-webhook-1", setupOpts{})
	p := e.connectGmail(t, ts, "inbox@acme.test")
	// Another service account of the same project: a real Google-signed identity, but not the subscription's.
	_, strangerSA, err := e.admin.CreateServiceAccount(e.ctx, ts.project.ProjectID, "stranger")
	require.NoError(t, err)
	d := e.diagnostics(t, ts, p.ID)
	sub, aud := d.Diagnostics.Subscription, d.Diagnostics.PushAudience
	require.Equal(t, e.s.BaseURL+"/api/email/webhooks/google", aud)
	e.waitSyncIdle(t)

	stored := func() int { return e.count(t, "SELECT count(*) FROM gmail.notifications") }
	jobs := func() int {
		return e.count(t, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync'")
	}
	notifications, queued := stored(), jobs()
	body := func(id string) []byte { return envelope(sub, id, "inbox@acme.test", 999999) }
	bearer := func(tok string) string { return "Bearer " + tok }
	claims := func(mut func(map[string]any)) map[string]any {
		c := pushClaims(aud, ts.saEmail)
		if mut != nil {
			mut(c)
		}
		return c
	}
	sandboxKid := sandboxKids(t, sb)[0]

	cases := []struct {
		name string
		auth string
	}{
		{"no Authorization header", ""},
		{"empty bearer", "Bearer "},
		{"not a bearer", "Basic " + trusted.sign(t, trusted.kid, claims(nil))},
		{"not a JWT", "Bearer not-a-jwt"},
		{"wrong audience", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["aud"] = "https://evil.example/api/email/webhooks/google" })))},
		{"audience without the path", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["aud"] = e.s.BaseURL })))},
		{"wrong issuer", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })))},
		{"another service account", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["email"] = strangerSA })))},
		{"email not verified", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["email_verified"] = false })))},
		{"expired", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		})))},
		{"no expiry", bearer(trusted.sign(t, trusted.kid, claims(func(c map[string]any) { delete(c, "exp") })))},
		{"signed by another key (unknown kid)", bearer(other.sign(t, other.kid, claims(nil)))},
		{"signed by another key (a trusted kid)", bearer(other.sign(t, trusted.kid, claims(nil)))},
		{"signed by another key (the sandbox's kid)", bearer(other.sign(t, sandboxKid, claims(nil)))},
		{"alg none", "Bearer " + unsignedJWT(claims(nil))},
	}
	for i, c := range cases {
		require.Equal(t, http.StatusUnauthorized, e.postPush(t, c.auth, body("bad-"+itoa(i))), c.name)
	}
	require.Equal(t, notifications, stored(), "nothing stored")
	require.Equal(t, queued, jobs(), "nothing enqueued")

	// Control: the same key with correct claims is accepted and stored (so each refusal above is about
	// its one bad claim), and a malformed envelope with a good token is a 400.
	good := bearer(trusted.sign(t, trusted.kid, claims(nil)))
	require.Equal(t, http.StatusBadRequest, e.postPush(t, good, []byte(`{"message":{}}`)))
	require.Equal(t, http.StatusNoContent, e.postPush(t, good, body("good-1")))
	require.Equal(t, notifications+1, stored())
	metrics := e.s.HTTP("").Do(t, http.MethodGet, e.s.MetricsURL+"/metrics", nil)
	require.Contains(t, metrics.String(), `alga_gmail_push_requests_total{result="unauthenticated"} `+itoa(len(cases)))
}

func itoa(i int) string { return strconv.Itoa(i) }

// unsignedJWT is a token with "alg":"none" and no signature.
func unsignedJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}
