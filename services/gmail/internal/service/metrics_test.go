package service

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// A retried Start (or a second service on the same registry) reuses the collectors registered first
// instead of failing; a clash with a different collector is an error, not a panic.
func TestMetricsRegisterOncePerRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	first, err := newMetrics(reg)
	require.NoError(t, err)
	second, err := newMetrics(reg)
	require.NoError(t, err)
	first.messages.Inc()
	require.Equal(t, first.push, second.push)
	require.EqualValues(t, 1, counterValue(second.messages))

	clash := prometheus.NewRegistry()
	require.NoError(t, clash.Register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "alga_gmail_messages_stored_total", Help: "a gauge"})))
	_, err = newMetrics(clash)
	require.Error(t, err)
}
