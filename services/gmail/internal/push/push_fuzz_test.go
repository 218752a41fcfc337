package push

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// Fuzz targets of the Pub/Sub push path beyond push_test.go's (envelope, token, claims): the envelope's
// data payload, the Authorization header, and Google's JWKS document.

// pushBody is a push envelope carrying data (base64) as message.data.
func pushBody(subscription, messageID, publishTime string, data []byte) []byte {
	b, _ := json.Marshal(map[string]any{"subscription": subscription, "message": map[string]any{
		"data": base64.StdEncoding.EncodeToString(data), "messageId": messageID, "publishTime": publishTime}})
	return b
}

// reencode is the envelope Pub/Sub would send for e: parsing it must give e back.
func reencode(e *Envelope) []byte {
	data, _ := json.Marshal(map[string]any{"emailAddress": e.EmailAddress, "historyId": e.HistoryID})
	pt := ""
	if !e.PublishTime.IsZero() {
		pt = e.PublishTime.Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	return pushBody(e.Subscription, e.MessageID, pt, data)
}

// FuzzEnvelopeData fuzzes what the Gmail notification inside a push carries (message.data) and the
// message id: an accepted notification names a clean, lowercased mailbox and a positive history id, and
// re-encodes to an envelope that parses to the same value; a refused one is ErrMalformed.
func FuzzEnvelopeData(f *testing.F) {
	f.Add([]byte(`{"emailAddress":"support@acme.test","historyId":9876543}`), "m-1", "2024-05-01T10:00:00.123Z")
	f.Add([]byte(`{"emailAddress":"Support@Acme.Test","historyId":"42"}`), "1234567890", "")
	f.Add([]byte(`{"emailAddress":"a@b.test","historyId":0}`), "m", "not a time")
	f.Add([]byte(`{"emailAddress":"A <a@b.test>","historyId":1}`), "m", "")
	f.Add([]byte(`{"emailAddress":"a\u0000@b.test","historyId":1}`), "m", "")
	f.Add([]byte(`{"emailAddress":"a@b.test","historyId":18446744073709551615}`), "m", "")
	f.Add([]byte(`{"emailAddress":["a@b.test"],"historyId":{"x":1}}`), "m id", "")
	f.Add([]byte("not json"), "", "")
	f.Fuzz(func(t *testing.T, data []byte, messageID, publishTime string) {
		e, err := ParseEnvelope(pushBody("projects/acme-prod/subscriptions/alga-gmail-1", messageID, publishTime, data))
		if err != nil {
			require.True(t, errors.Is(err, ErrMalformed), "%v", err)
			require.True(t, utf8.ValidString(err.Error()), "the error is loggable text")
			return
		}
		require.True(t, utf8.ValidString(e.EmailAddress) && !strings.ContainsRune(e.EmailAddress, 0), "%q", e.EmailAddress)
		require.Equal(t, strings.ToLower(e.EmailAddress), e.EmailAddress)
		require.Contains(t, e.EmailAddress, "@")
		require.NotZero(t, e.HistoryID)
		require.NotEmpty(t, e.MessageID)
		again, err := ParseEnvelope(reencode(e))
		require.NoError(t, err)
		require.Equal(t, e, again)
	})
}

// FuzzBearerToken: an accepted Authorization header yields a non-empty token without surrounding space,
// which parses back to itself; a refused one is ErrUnauthenticated.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer eyJ.eyJ.sig", "bearer  x ", "Bearer", "Bearer ", "Basic dXNlcg==", "BEARER\tx", "", "Bearer \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := BearerToken(header)
		if err != nil {
			require.True(t, errors.Is(err, ErrUnauthenticated))
			return
		}
		require.NotEmpty(t, tok)
		require.Equal(t, strings.TrimSpace(tok), tok)
		require.LessOrEqual(t, len(tok), 16<<10)
		again, err := BearerToken("Bearer " + tok)
		require.NoError(t, err)
		require.Equal(t, tok, again)
	})
}

// FuzzParseJWKS: Google's certificate document (fetched from outside): every key returned is an RSA key
// of at least 2048 bits with a sane exponent under a non-empty kid; anything else is an error, never a
// panic.
func FuzzParseJWKS(f *testing.F) {
	n := base64.RawURLEncoding.EncodeToString(googleKey.N.Bytes())
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"` + n + `","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"k1"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"","n":"` + n + `","e":"AAAAAAAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := ParseJWKS(body)
		if err != nil {
			require.Empty(t, keys)
			return
		}
		require.NotEmpty(t, keys)
		for kid, k := range keys {
			require.NotEmpty(t, kid)
			require.GreaterOrEqual(t, k.N.BitLen(), 2041, "at least 256 bytes of modulus")
			require.GreaterOrEqual(t, k.E, 3)
		}
	})
}
