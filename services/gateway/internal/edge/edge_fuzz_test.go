package edge_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/gateway/internal/edge"
)

// FuzzCheckRequest: whatever the path parameter, query, forwarded header and body, the check answers
// nil or a FieldError whose answer marshals (valid UTF-8 — an error message that is not would itself be
// a 500), and a request it lets through holds only text a proto string and gRPC metadata can carry.
func FuzzCheckRequest(f *testing.F) {
	f.Add("0b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a10", "page_size=5", "Bearer x", "X-Goog-Channel-Id", `{"a":1}`)
	f.Add("\xf0\x28\x8c\x28", "a=%F0%28%8C%28", "Bearer \xff", "X-Goog-Resource-State", "{\"a\":\"\xff\"}")
	f.Add("a\x00", "%zz=1&b", "", "Cookie", "[1]")
	f.Add("", "x=%00&y=é", "\té", "Authorization", "")
	f.Fuzz(func(t *testing.T, param, rawQuery, headerValue, header, body string) {
		r := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/api/v1/x", RawQuery: rawQuery},
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
		if header != "" {
			r.Header[http.CanonicalHeaderKey(header)] = []string{headerValue}
		}
		forwarded := func(h string) (string, bool) {
			return strings.ToLower(h), strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "Cookie")
		}
		fe := edge.CheckRequest(r, edge.Request{PathParams: map[string]string{"id": param}, Metadata: forwarded, JSONBody: true})
		if fe != nil {
			if _, err := protojson.Marshal(fe.GRPCStatus().Proto()); err != nil {
				t.Fatalf("the answer to %q does not marshal: %v", fe.Error(), err)
			}
			return
		}
		if !utf8.ValidString(param) || strings.ContainsRune(param, 0) {
			t.Fatalf("let through path parameter %q", param)
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Fatalf("let through a malformed query %q", rawQuery)
		}
		for k, vs := range q {
			for _, v := range append(vs, k) {
				if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
					t.Fatalf("let through query text %q", v)
				}
			}
		}
		if _, ok := forwarded(header); ok && header != "" {
			for i := 0; i < len(headerValue); i++ {
				if c := headerValue[i]; (c < 0x20 && c != '\t') || c > 0x7e {
					t.Fatalf("let through forwarded header %s: %q", header, headerValue)
				}
			}
		}
		b, _ := io.ReadAll(r.Body)
		if string(b) != body {
			t.Fatal("the body is not handed on intact")
		}
	})
}

// FuzzExplainJSON: for any body, the explanation of a decode failure names a field in valid UTF-8 and
// marshals; and a body that decodes is never explained as wrong.
func FuzzExplainJSON(f *testing.F) {
	f.Add(`{"mailbox":"a@b.test","display_name":12345}`)
	f.Add(`{"inbound_defaults":{"board_id":5},"label_filters":["x",1]}`)
	f.Add(`{"no_such_field":1,"\xff":2}`)
	f.Add(`{"active":"maybe","mailbox":null}`)
	f.Add(`{"gmail_client_id":"x","use_same_app":1}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, md := range []proto.Message{&gmailv1.CreateGmailProviderRequest{}, &oauthv1.UpdateGoogleConfigRequest{}} {
			decodeErr := protojson.Unmarshal([]byte(body), md)
			fe := edge.ExplainJSON(md.ProtoReflect().Descriptor(), []byte(body), protojson.UnmarshalOptions{})
			if fe == nil {
				continue
			}
			if decodeErr == nil {
				t.Fatalf("explained a body that decodes: %v", fe)
			}
			if _, err := protojson.Marshal(fe.GRPCStatus().Proto()); err != nil || fe.Field == "" {
				t.Fatalf("explanation %q does not marshal or names no field: %v", fe.Error(), err)
			}
		}
	})
}
