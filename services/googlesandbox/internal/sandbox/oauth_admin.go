package sandbox

// OAuth clients and service accounts of a project, created for the admin API (its HTTP handlers are in
// admin.go).
//
// Client ids, secrets and the service-account key file copy Google's formats (...apps.googleusercontent.com,
// GOCSPX-..., the JSON key file). The key file's token_uri and certificate URLs point at the sandbox root, so
// Google's client libraries given the file talk to the sandbox.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

func (s *Server) newClient(p *project, redirectURIs []string) *oauthClient {
	c := &oauthClient{
		id:           p.number + "-" + randString(lowerAlnum, 32) + ".apps.googleusercontent.com",
		secret:       "GOCSPX-" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 28),
		projectID:    p.id,
		redirectURIs: slices.Clone(redirectURIs),
	}
	s.clients[c.id] = c
	p.clients = append(p.clients, c.id)
	return c
}

func (s *Server) createServiceAccount(p *project, name string) (*serviceAccount, error) {
	email := name + "@" + p.id + ".iam.gserviceaccount.com"
	if s.serviceAccts[email] != nil {
		return nil, fmt.Errorf("service account %s already exists", email)
	}
	k, err := keys.Get()
	if err != nil {
		return nil, err
	}
	pemKey, err := keys.PEMPKCS8(k)
	if err != nil {
		return nil, err
	}
	sa := &serviceAccount{email: email, projectID: p.id, clientID: randDigits(21), keyID: randHex(40), key: k}
	root := s.root()
	keyJSON := map[string]string{
		"type":                        "service_account",
		"project_id":                  p.id,
		"private_key_id":              sa.keyID,
		"private_key":                 pemKey,
		"client_email":                email,
		"client_id":                   sa.clientID,
		"auth_uri":                    root + "/o/oauth2/auth",
		"token_uri":                   root + "/token",
		"auth_provider_x509_cert_url": root + "/oauth2/v1/certs",
		"client_x509_cert_url":        root + "/robot/v1/metadata/x509/" + url.PathEscape(email),
		"universe_domain":             "googleapis.com",
	}
	b, err := json.MarshalIndent(keyJSON, "", "  ")
	if err != nil {
		return nil, err
	}
	sa.keyJSON = b
	s.serviceAccts[email] = sa
	s.saKeys[sa.keyID] = sa
	return sa, nil
}
