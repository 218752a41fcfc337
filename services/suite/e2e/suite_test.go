// Package e2e drives the whole suite — every target, the gateway and the Google sandbox — over HTTP and
// gRPC, the way browsers, Google and the platform's services do.
package e2e

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/suite/harness"
)

func TestSuiteStartsAndServesEveryTarget(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := s.HTTP("")
	r := c.Do(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusOK, r.Status, r.String())
	r = c.Do(t, http.MethodGet, "/healthz", nil)
	require.Equal(t, http.StatusOK, r.Status)

	admin := s.HTTP(s.UserToken("tenant-a", "admin", "system_settings:update"))
	r = admin.Do(t, http.MethodGet, "/api/v1/secrets", nil)
	require.Equal(t, http.StatusOK, r.Status, r.String())

	client := s.HTTP(s.ClientUserToken("tenant-a", "customer"))
	r = client.Do(t, http.MethodGet, "/api/v1/secrets", nil)
	require.Equal(t, http.StatusForbidden, r.Status, r.String())
}
