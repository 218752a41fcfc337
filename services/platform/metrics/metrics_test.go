package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/metrics"
)

func TestUseReusesAndRefuses(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "things_total", Help: "Things."}
	r := metrics.NewRegistrar(reg)
	first := metrics.Use(r, prometheus.NewCounterVec(opts, []string{"kind"}))
	again := metrics.Use(r, prometheus.NewCounterVec(opts, []string{"kind"}))
	require.NoError(t, r.Err())
	require.Same(t, first, again, "a second registration reuses the first collector")

	metrics.Use(r, prometheus.NewCounterVec(opts, []string{"other"}))
	require.Error(t, r.Err(), "same name, different labels: refused, not a panic")

	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "X."})
	none := metrics.NewRegistrar(nil)
	require.Same(t, c, metrics.Use(none, c))
	require.NoError(t, none.Err())
}
