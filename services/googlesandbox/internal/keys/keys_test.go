package keys

import (
	"testing"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	k, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Sign(k, "kid1", map[string]any{"iss": "x"})
	if err != nil {
		t.Fatal(err)
	}
	h, claims, err := Parse(tok)
	if err != nil || h.Kid != "kid1" || h.Alg != "RS256" || claims["iss"] != "x" {
		t.Fatalf("parse: %v %+v %v", err, h, claims)
	}
	if err := Verify(tok, &k.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := Verify(tok[:len(tok)-2]+"AA", &k.PublicKey); err == nil {
		t.Fatal("tampered signature verified")
	}
}

func FuzzParseJWT(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Add("...")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = Parse(s)
		_ = Verify(s, nil)
	})
}
