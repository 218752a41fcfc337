package calendar_test

import (
	"context"
	"flag"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/calendar"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// The lifecycle as the binary drives it: construct, bind, register, start (retried while it fails),
// stop once Start's context has ended.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	tg := calendar.NewTarget()
	require.Equal(t, target.Calendar, tg.Name())
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	tg.Bind(config.NewBinder(fs))
	require.NotNil(t, fs.Lookup("calendar-channel-key"))
	require.NoError(t, fs.Parse([]string{"-calendar-channel-key=short"}))

	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	srv := grpcserver.New(grpcserver.Options{Logger: log, Registerer: reg})
	tg.Register(srv)
	info := srv.GRPC.GetServiceInfo()
	require.Contains(t, info, calendarv1.CalendarProviderService_ServiceDesc.ServiceName)
	require.Contains(t, info, calendarv1.CalendarChangeService_ServiceDesc.ServiceName)
	require.Contains(t, info, maintenancev1.CalendarUpkeepService_ServiceDesc.ServiceName)

	pool, _ := pgtest.NewPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, tg.Migrations().Apply(ctx, pool))
	base, err := urls.Parse("https://helpdesk.example.com", false)
	require.NoError(t, err)
	deps := &target.Deps{
		Config: config.Config{ServiceTokenKey: "0123456789abcdef0123456789abcdef"},
		Logger: log, Pool: pool, Server: srv, Base: base, Google: googleapi.New("", ""), Registry: reg,
	}
	require.ErrorContains(t, tg.Start(ctx, deps), "ALGA_CALENDAR_CHANNEL_KEY", "the bound setting is read")
	require.NoError(t, fs.Set("calendar-channel-key", "a-calendar-channel-key-of-32-bytes!"))
	require.NoError(t, tg.Start(ctx, deps))

	// River runs: the sweeper's periodic job runs on start.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM calendar.river_job WHERE kind = 'sweep' AND state = 'completed'").Scan(&n))
		return n > 0
	}, 30*time.Second, 50*time.Millisecond)

	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	require.NoError(t, tg.Stop(sctx))
}
