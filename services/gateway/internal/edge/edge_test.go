package edge_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/gateway/internal/edge"
)

var limits = []edge.BodyLimit{
	{Prefix: "/api/", Class: "API", Limit: 1 << 20},
	{Prefix: "/api/push", Class: "push", Limit: 1 << 10},
}

// echo answers the length of the body it read.
func echo(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(edge.LimitBodies(limits, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte{byte('0' + len(b)%10)})
	})))
	t.Cleanup(srv.Close)
	return srv
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"details"`
}

func decodeError(t *testing.T, body []byte) apiError {
	t.Helper()
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e), "%s", body)
	return e
}

// A real client sending 10 MiB, again and again, gets the 413 naming the limit every time — never a
// connection reset — with a known length and chunked (no Content-Length).
func TestOversizedBodyAnswers413NotReset(t *testing.T) {
	t.Parallel()
	srv := echo(t)
	big := bytes.Repeat([]byte("a"), 10<<20)
	for i := 0; i < 10; i++ {
		var body io.Reader = bytes.NewReader(big)
		if i%2 == 1 {
			body = io.MultiReader(bytes.NewReader(big)) // hides the length: chunked
		}
		resp, err := srv.Client().Post(srv.URL+"/api/v1/x", "application/json", body)
		require.NoError(t, err, "request %d", i)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "request %d: %s", i, b)
		e := decodeError(t, b)
		require.Contains(t, e.Message, "body: is larger than the limit of 1048576 bytes (1 MiB) for API requests")
		require.Equal(t, "body", e.Details[0].Metadata["field"])
	}
	// The longest prefix picks the class; a body within the limit reaches the handler whole.
	resp, err := srv.Client().Post(srv.URL+"/api/push", "application/json", bytes.NewReader(make([]byte, 1025)))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Contains(t, string(b), "1 KiB) for push requests")
	resp, err = srv.Client().Post(srv.URL+"/api/v1/x", "application/json", bytes.NewReader(make([]byte, 1<<20)))
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.Equal(t, "6", string(b), "1048576 bytes read") // 1048576 % 10
}

// A raw client that writes its whole oversized request before reading (the case that used to see a reset).
func TestOversizedBodyRawClientReadsThe413(t *testing.T) {
	t.Parallel()
	srv := echo(t)
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		require.NoError(t, err)
		const n = 10 << 20
		_, err = io.WriteString(conn, "POST /api/v1/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
		require.NoError(t, err)
		_, err = io.Copy(conn, io.LimitReader(zeros{}, n))
		require.NoError(t, err, "the server read the whole body")
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", b)
		require.Contains(t, string(b), "1 MiB")
		require.False(t, resp.Close, "the body was drained: the connection stays usable")
		_ = conn.Close()
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func check(t *testing.T, target string, mutate func(*http.Request), params map[string]string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://x"+target, strings.NewReader(`{"a":1}`))
	r.Header.Set("Content-Type", "application/json")
	if mutate != nil {
		mutate(r)
	}
	err := edge.CheckRequest(r, edge.Request{PathParams: params, JSONBody: true, Metadata: func(h string) (string, bool) {
		return strings.ToLower(h), strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "Cookie")
	}})
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckRequest(t *testing.T) {
	t.Parallel()
	require.Empty(t, check(t, "/api/v1/p/abc?page_size=5&q=é", nil, map[string]string{"id": "é"}))
	require.Equal(t, "id: must be valid UTF-8 without NUL bytes (path parameter)",
		check(t, "/api/v1/p/x", nil, map[string]string{"id": "\xf0\x28\x8c\x28"}))
	require.Contains(t, check(t, "/api/v1/p/x", nil, map[string]string{"id": "a\x00"}), "id: ")
	require.Contains(t, check(t, "/api/v1/p?page_token=%F0%28%8C%28", nil, nil), "page_token: must be valid UTF-8")
	require.Contains(t, check(t, "/api/v1/p?page_token=%00", nil, nil), "page_token: ")
	require.Contains(t, check(t, "/api/v1/p?a=%zz", nil, nil), "query: is not a well-formed")
	require.Contains(t, check(t, "/api/v1/p?%FF=1", nil, nil), "query: has a parameter name")
	require.Contains(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("Authorization", "Bearer \xff") }, nil), "header Authorization: must be printable ASCII")
	require.Contains(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("Cookie", "a=é") }, nil), "header Cookie: ")
	require.Empty(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("User-Agent", "é") }, nil), "a header not forwarded may hold any text")
	require.Contains(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("X-Goog-Channel-ID", "\xff") }, nil), "header X-Goog-Channel-Id: ")
	body := func(s string) func(*http.Request) {
		return func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(s)) }
	}
	require.Equal(t, "body: must be valid UTF-8", check(t, "/api/v1/p", body("{\"a\":\"\xff\"}"), nil))
	require.Equal(t, "body: is not valid JSON", check(t, "/api/v1/p", body(`{"a":`), nil))
	require.Equal(t, "body: is not valid JSON", check(t, "/api/v1/p", body("{\"a\":\"\x00\"}"), nil))
	require.Equal(t, "body: must be a JSON object", check(t, "/api/v1/p", body(` [1]`), nil))
	require.Empty(t, check(t, "/api/v1/p", body(""), nil), "an empty body is an empty request")
	require.Equal(t, "header Content-Type: must be application/json",
		check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("Content-Type", "text/xml") }, nil))
	require.Empty(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=utf-8") }, nil))
	require.Empty(t, check(t, "/api/v1/p", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, nil), "curl -d")

	// The body is still there for the handler after the check.
	r := httptest.NewRequest(http.MethodPost, "http://x/api/v1/p", strings.NewReader(`{"a":1}`))
	require.Nil(t, edge.CheckRequest(r, edge.Request{JSONBody: true}))
	b, _ := io.ReadAll(r.Body)
	require.Equal(t, `{"a":1}`, string(b))
}
