package googlesandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

// Bad input gets a Google-shaped 4xx, never a 5xx or a panic.
func TestBadInputIsAClient4xx(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "bad-input", "production")
	b.user(t, "max@acme.test")
	tok := b.connect(t, tn.cfg, "max@acme.test")
	r := b.sb.URL()
	cases := []struct {
		method, path, body string
		auth               bool
	}{
		{"GET", "/gmail/v1/users/me/profile", "", false},
		{"GET", "/gmail/v1/users/me/history", "", true},
		{"GET", "/gmail/v1/users/me/history?startHistoryId=abc", "", true},
		{"GET", "/gmail/v1/users/me/history?startHistoryId=1&pageToken=%%%", "", true},
		{"GET", "/gmail/v1/users/me/history?startHistoryId=99999999&maxResults=-4", "", true},
		{"GET", "/gmail/v1/users/me/history?startHistoryId=99999999&historyTypes=bogus", "", true},
		{"GET", "/gmail/v1/users/me/messages?q=after:notadate", "", true},
		{"GET", "/gmail/v1/users/me/messages?pageToken=!!", "", true},
		{"GET", "/gmail/v1/users/me/messages/nope?format=weird", "", true},
		{"POST", "/gmail/v1/users/me/watch", "{not json", true},
		{"POST", "/gmail/v1/users/me/watch", `{"topicName":"garbage"}`, true},
		{"POST", "/gmail/v1/users/me/watch", `{"topicName":"projects/bad-input/topics/missing"}`, true},
		{"GET", "/calendar/v3/calendars/primary/events?syncToken=garbage", "", true},
		{"GET", "/calendar/v3/calendars/primary/events?syncToken=CPe30", "", true},
		{"GET", "/calendar/v3/calendars/primary/events?pageToken=zzz", "", true},
		{"GET", "/calendar/v3/calendars/primary/events?timeMin=yesterday", "", true},
		{"GET", "/calendar/v3/calendars/primary/events?orderBy=startTime", "", true},
		{"GET", "/calendar/v3/calendars/nobody@x.test/events", "", true},
		{"POST", "/calendar/v3/calendars/primary/events/watch", `{"id":"a b","type":"web_hook","address":"x"}`, true},
		{"POST", "/calendar/v3/calendars/primary/events/watch", `{"id":"ok","type":"web_hook","address":"ftp://x"}`, true},
		{"POST", "/calendar/v3/calendars/primary/events/watch", `{"id":"ok","type":"web_hook","address":"https://x.test","params":{"ttl":"-1"}}`, true},
		{"POST", "/calendar/v3/channels/stop", `[]`, true},
		{"POST", "/token", "grant_type=authorization_code&code=x&client_id=" + tn.project.ClientID + "&client_secret=" + tn.project.ClientSecret, false},
		{"POST", "/token", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c", false},
		{"POST", "/token", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=" + strings.Repeat("x", 5000), false},
		{"POST", "/token", "grant_type=password", false},
		{"POST", "/token", "%zz", false},
		{"POST", "/revoke", "token=unknown", false},
		{"GET", "/o/oauth2/v2/auth?client_id=" + tn.project.ClientID + "&redirect_uri=" + redirectURI + "&response_type=code&scope=bad%20scope", "", false},
		{"GET", "/o/oauth2/v2/auth?client_id=" + tn.project.ClientID + "&redirect_uri=" + redirectURI + "&response_type=token&scope=email", "", false},
		{"GET", "/o/oauth2/v2/auth?client_id=" + tn.project.ClientID + "&redirect_uri=" + redirectURI + "&response_type=code&scope=email&code_challenge=short&code_challenge_method=S256", "", false},
		{"POST", "/o/oauth2/v2/auth?client_id=" + tn.project.ClientID + "&redirect_uri=" + redirectURI + "&response_type=code&scope=email", "decision=maybe", false},
		{"POST", "/o/oauth2/v2/auth?client_id=" + tn.project.ClientID + "&redirect_uri=" + redirectURI + "&response_type=code&scope=email", "decision=approve&account=ghost@x.test", false},
		{"POST", "/sandbox/admin/projects", `{"projectId":"X"}`, false},
		{"POST", "/sandbox/admin/projects", `{`, false},
		{"POST", "/sandbox/admin/users", `{"email":"nope"}`, false},
		{"POST", "/sandbox/admin/users/ghost@x.test/messages", `{}`, false},
		{"POST", "/sandbox/admin/users/max@acme.test/messages", `{"labelIds":["NOPE"]}`, false},
		{"POST", "/sandbox/admin/users/max@acme.test/messages", `{"raw":"bm90IGEgbWVzc2FnZQ=="}`, false},
		{"POST", "/sandbox/admin/clock/advance", `{"duration":"-1h"}`, false},
		{"POST", "/sandbox/admin/faults", `{"endpoint":"x","rate429":2}`, false},
		{"POST", "/sandbox/admin/faults", `{"endpoint":"x","latency":"soon"}`, false},
		{"POST", "/sandbox/admin/users/max@acme.test/calendars/primary/events", `{"id":"UPPER"}`, false},
		{"PUT", "/sandbox/admin/users/max@acme.test/calendars/primary/events/abcdef", `{}`, false},
		{"GET", "/sandbox/admin/pubsub/subscription?name=garbage", "", false},
		{"GET", "/no/such/path", "", false},
	}
	for _, c := range cases {
		req, err := http.NewRequestWithContext(b.ctx, c.method, r+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		if strings.HasPrefix(c.body, "{") || strings.HasPrefix(c.body, "[") {
			req.Header.Set("Content-Type", "application/json")
		} else if c.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if c.auth {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.True(t, resp.StatusCode >= 400 && resp.StatusCode < 500, "%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			var v map[string]any
			require.NoError(t, json.Unmarshal(body, &v), "%s %s: %s", c.method, c.path, body)
			require.Contains(t, v, "error", "%s %s", c.method, c.path)
		}
	}
}

// sandboxGoroutines lists goroutines running sandbox or pstest code.
func sandboxGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "googlesandbox/internal/") || strings.Contains(g, "pubsub/v2/pstest") {
			out = append(out, g)
		}
	}
	return out
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Not parallel: no other sandbox runs while this test looks at every goroutine.
	for range 3 {
		ctx := context.Background()
		sb, err := googlesandbox.Start(ctx, googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0"})
		require.NoError(t, err)
		resp, err := http.Get(sb.URL() + "/oauth2/v3/certs")
		require.NoError(t, err)
		resp.Body.Close()
		require.NotEmpty(t, sandboxGoroutines())
		require.NoError(t, sb.Close())
		require.NoError(t, sb.Close()) // idempotent
	}
	http.DefaultClient.CloseIdleConnections()
	require.Eventually(t, func() bool { return len(sandboxGoroutines()) == 0 }, 5*time.Second, 20*time.Millisecond,
		"left running: %v", sandboxGoroutines())
}

func TestMainAndFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := googlesandbox.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, "127.0.0.1:8085", o.Addr)
	require.Equal(t, "127.0.0.1:8086", o.PubSubAddr)

	var out bytes.Buffer
	require.NoError(t, googlesandbox.Main(t.Context(), []string{"--help"}, &out))
	require.Contains(t, out.String(), "-pubsub-addr")
	require.Contains(t, out.String(), googlesandbox.AdminAPIHelp)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var runOut syncBuffer
	go func() {
		done <- googlesandbox.Main(ctx, []string{"--addr", "127.0.0.1:0", "--pubsub-addr", "127.0.0.1:0"}, &runOut)
	}()
	require.Eventually(t, func() bool { return strings.Contains(runOut.String(), "ALGA_GOOGLE_API_ROOT=http://127.0.0.1:") }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, runOut.String(), "PUBSUB_EMULATOR_HOST=127.0.0.1:")
	cancel()
	require.NoError(t, <-done)
}
