package urls_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/urls"
)

func TestParseCanonicalizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://Helpdesk.Example.COM":      "https://helpdesk.example.com",
		"https://helpdesk.example.com:443/": "https://helpdesk.example.com",
		"https://helpdesk.example.com:8443": "https://helpdesk.example.com:8443",
		" https://a.example.com ":           "https://a.example.com",
	} {
		b, err := urls.Parse(in, false)
		require.NoError(t, err, in)
		require.Equal(t, want, b.String(), in)
	}
	b, err := urls.Parse("http://127.0.0.1:8080", true)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080/api/auth/google/callback", b.GmailRedirectURI())
	require.Equal(t, "http://127.0.0.1:8080/api/auth/google/calendar/callback", b.CalendarRedirectURI())
	require.Equal(t, "http://127.0.0.1:8080/api/email/webhooks/google", b.GmailPushEndpoint())
	require.Equal(t, b.GmailPushEndpoint(), b.GmailPushAudience())
	require.Equal(t, "http://127.0.0.1:8080/api/calendar/webhooks/google", b.CalendarWebhookAddress())
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "helpdesk.example.com", "ftp://x.example.com", "https://x.example.com/alga",
		"https://user:pw@x.example.com", "https://x.example.com?a=1", "http://x.example.com",
	} {
		_, err := urls.Parse(in, false)
		require.Error(t, err, in)
	}
	_, err := urls.Parse("http://127.0.0.1:8080", false)
	require.Error(t, err, "plain http needs --dev")
	_, err = urls.Parse("http://10.0.0.5:8080", true)
	require.Error(t, err, "plain http only for loopback")
}
