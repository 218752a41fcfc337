package grpctls_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/grpctls"
)

// Nothing configured is plaintext; a half configuration is refused rather than silently plaintext.
func TestLoad(t *testing.T) {
	t.Parallel()
	c, err := grpctls.Load("", "", "")
	require.NoError(t, err)
	require.Nil(t, c)
	require.Nil(t, c.Server())
	require.Nil(t, c.Client())
	require.False(t, c.Mutual())

	for _, files := range [][3]string{{"cert.pem", "", ""}, {"", "key.pem", ""}, {"", "", "ca.pem"}} {
		_, err := grpctls.Load(files[0], files[1], files[2])
		require.Error(t, err, files)
	}
	_, err = grpctls.Load("/nonexistent/cert.pem", "/nonexistent/key.pem", "")
	require.ErrorContains(t, err, "certificate")
}
