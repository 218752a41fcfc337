package googlesandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	calendar "google.golang.org/api/calendar/v3"
	gmail "google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

const (
	scopeGmail    = "https://www.googleapis.com/auth/gmail.readonly"
	scopeCalendar = "https://www.googleapis.com/auth/calendar.readonly"
	redirectURI   = "https://app.example.com/api/auth/google/callback"
)

type testBundle struct {
	ctx   context.Context
	sb    *googlesandbox.Sandbox
	admin *googlesandbox.AdminClient
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := t.Context()
	sb, err := googlesandbox.Start(ctx, googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0",
		PushMinBackoff: 20 * time.Millisecond, PushMaxBackoff: 100 * time.Millisecond, PushMaxAttempts: 5, PushPollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sb.Close()) })
	return &testBundle{ctx: ctx, sb: sb, admin: sb.Admin()}
}

// tenant is a project with an OAuth client and a config for x/oauth2.
type tenant struct {
	project googlesandbox.Project
	cfg     *oauth2.Config
}

func (b *testBundle) tenant(t *testing.T, projectID, status string) *tenant {
	t.Helper()
	p, err := b.admin.CreateProject(b.ctx, googlesandbox.CreateProjectRequest{ProjectID: projectID, PublishingStatus: status, RedirectURIs: []string{redirectURI}})
	require.NoError(t, err)
	return &tenant{project: p, cfg: b.oauthConfig(p.ClientID, p.ClientSecret)}
}

func (b *testBundle) oauthConfig(clientID, secret string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURI,
		Scopes: []string{"openid", "email", scopeGmail, scopeCalendar},
		Endpoint: oauth2.Endpoint{AuthURL: b.sb.URL() + "/o/oauth2/v2/auth", TokenURL: b.sb.URL() + "/token",
			AuthStyle: oauth2.AuthStyleInParams},
	}
}

func (b *testBundle) user(t *testing.T, email string) {
	t.Helper()
	require.NoError(t, b.admin.CreateTestUser(b.ctx, email))
}

// connect runs the authorization code flow with PKCE as account and exchanges the code.
func (b *testBundle) connect(t *testing.T, cfg *oauth2.Config, account string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("state-123", oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", account))
	loc, err := b.admin.Consent(b.ctx, authURL, account, true)
	require.NoError(t, err)
	require.Equal(t, "state-123", loc.Query().Get("state"))
	tok, err := cfg.Exchange(b.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	return tok
}

func (b *testBundle) gmail(t *testing.T, cfg *oauth2.Config, tok *oauth2.Token) *gmail.Service {
	t.Helper()
	svc, err := gmail.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(cfg.TokenSource(b.ctx, tok)))
	require.NoError(t, err)
	return svc
}

func (b *testBundle) calendar(t *testing.T, cfg *oauth2.Config, tok *oauth2.Token) *calendar.Service {
	t.Helper()
	svc, err := calendar.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/calendar/v3/"), option.WithTokenSource(cfg.TokenSource(b.ctx, tok)))
	require.NoError(t, err)
	return svc
}

func (b *testBundle) pubsub(t *testing.T, projectID string) *pubsub.Client {
	t.Helper()
	c, err := pubsub.NewClient(b.ctx, projectID, option.WithEndpoint(b.sb.PubSubAddr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// grantGmailPublisher adds gmail-api-push as publisher on topic with a read-modify-write.
func grantGmailPublisher(t *testing.T, ctx context.Context, ps *pubsub.Client, topic string) {
	t.Helper()
	pol, err := ps.TopicAdminClient.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: topic})
	require.NoError(t, err)
	pol.Bindings = append(pol.Bindings, &iampb.Binding{Role: "roles/pubsub.publisher", Members: []string{"serviceAccount:" + googlesandbox.GmailPushServiceAccount}})
	_, err = ps.TopicAdminClient.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: topic, Policy: pol})
	require.NoError(t, err)
}

func createTopic(t *testing.T, ctx context.Context, ps *pubsub.Client, name string) {
	t.Helper()
	_, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name})
	require.NoError(t, err)
}

func retrieveErr(t *testing.T, err error) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "want *oauth2.RetrieveError, got %v", err)
	return re
}

// pushRequest is one request a receiver saw.
type pushRequest struct {
	Header http.Header
	Body   []byte
	Claims map[string]any
	Err    error
}

// receiver is an HTTP endpoint recording pushes; Pub/Sub pushes have their OIDC token verified with
// go-oidc against the sandbox's JWKS.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []pushRequest
	statuses []int // answered in order; then 204
	notify   chan struct{}
}

func (b *testBundle) receiver(t *testing.T, audience string, statuses ...int) *receiver {
	t.Helper()
	keySet := oidc.NewRemoteKeySet(b.ctx, b.sb.URL()+"/oauth2/v3/certs")
	rc := &receiver{statuses: statuses, notify: make(chan struct{}, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pr := pushRequest{Header: r.Header.Clone(), Body: body}
		if h := r.Header.Get("Authorization"); h != "" {
			aud := audience
			if aud == "" {
				aud = "http://" + r.Host + r.URL.Path
			}
			v := oidc.NewVerifier("https://accounts.google.com", keySet, &oidc.Config{ClientID: aud})
			idt, err := v.Verify(r.Context(), strings.TrimPrefix(h, "Bearer "))
			pr.Err = err
			if err == nil {
				pr.Claims = map[string]any{}
				pr.Err = idt.Claims(&pr.Claims)
			}
		}
		rc.mu.Lock()
		status := 204
		if len(rc.reqs) < len(rc.statuses) {
			status = rc.statuses[len(rc.reqs)]
		}
		rc.reqs = append(rc.reqs, pr)
		rc.mu.Unlock()
		rc.notify <- struct{}{}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []pushRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]pushRequest(nil), rc.reqs...)
}

// waitFor waits until the receiver saw n requests.
func (rc *receiver) waitFor(t *testing.T, n int) []pushRequest {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if r := rc.requests(); len(r) >= n {
			return r
		}
		select {
		case <-rc.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %d requests, got %d", n, len(rc.requests()))
		}
	}
}

type envelope struct {
	Message struct {
		Data        []byte            `json:"data"`
		MessageID   string            `json:"messageId"`
		MessageID2  string            `json:"message_id"`
		PublishTime time.Time         `json:"publishTime"`
		Attributes  map[string]string `json:"attributes"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

func decodeEnvelope(t *testing.T, body []byte) envelope {
	t.Helper()
	var e envelope
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	return e
}

// postForm posts a form without following redirects.
func postForm(t *testing.T, u string, form url.Values) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(u, form)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
