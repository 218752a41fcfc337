package service_test

import (
	"strings"
	"testing"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

// FuzzServiceAccountKey feeds outside input to the service-account key parser: it must never panic,
// an accepted key always has what the suite relies on, and errors never quote the private key.
func FuzzServiceAccountKey(f *testing.F) {
	f.Add(serviceAccountKey(f, projectA))
	f.Add(`{"type":"service_account"}`)
	f.Add(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`)
	f.Add(`{"type":"service_account","project_id":"p","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nMII=\n-----END PRIVATE KEY-----\n"}`)
	f.Add(`{"type":1,"client_email":["x"]}`)
	f.Add(`[]`)
	f.Add(`null`)
	f.Add("\ufeff{\"type\":\"service_account\"}")
	f.Add(`{"type":"service_account","client_email":null,"private_key":null}`)
	f.Add(strings.Repeat("{", 5000))
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := oauthv1.ParseServiceAccountKey([]byte(raw))
		if err != nil {
			if strings.Contains(raw, "PRIVATE KEY-----\n") && strings.Contains(err.Error(), "MII") {
				t.Fatalf("error quotes the key: %v", err)
			}
			return
		}
		if k.Type != "service_account" || k.ClientEmail == "" || k.PrivateKey == "" || k.ProjectID == "" {
			t.Fatalf("accepted an incomplete key: %+v", k)
		}
	})
}
