package app_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/suite/app"
)

// user stands for browser users (through the gateway) in whoMayCall.
const user = "user"

// whoMayCall is the least-privilege table of the README ("Service identities"), written out here on its
// own so a change to a target's Access table that widens or narrows it fails this test.
var whoMayCall = map[string][]string{
	"/alga.secrets.v1.SecretsService/PutSecrets":      {user, auth.SvcOAuth},
	"/alga.secrets.v1.SecretsService/DescribeSecrets": {user, auth.SvcOAuth},
	"/alga.secrets.v1.SecretsService/GetSecrets":      {auth.SvcOAuth, auth.SvcGmail},
	"/alga.secrets.v1.SecretsService/DeleteSecrets":   {user},
	"/alga.secrets.v1.SecretsService/ListSecretAudit": {user},

	"/alga.oauth.v1.GoogleSetupService/GetGoogleConfig":      {user, auth.SvcGmail, auth.SvcCalendar},
	"/alga.oauth.v1.GoogleSetupService/UpdateGoogleConfig":   {user},
	"/alga.oauth.v1.GoogleSetupService/TestGoogleConfig":     {user},
	"/alga.oauth.v1.GoogleSetupService/ResetGoogleProviders": {user},
	"/alga.oauth.v1.OAuthFlowService/BeginAuthorization":     {auth.SvcGmail, auth.SvcCalendar},
	"/alga.oauth.v1.OAuthFlowService/CompleteAuthorization":  {auth.SvcGateway},
	"/alga.oauth.v1.TokenService/GetAccessToken":             {auth.SvcGmail, auth.SvcCalendar, auth.SvcMaintenance},
	"/alga.oauth.v1.TokenService/GetConnection":              {auth.SvcGmail, auth.SvcCalendar},
	"/alga.oauth.v1.TokenService/DeleteConnection":           {auth.SvcGmail, auth.SvcCalendar},
	"/alga.oauth.v1.TokenService/ListConnections":            {auth.SvcMaintenance},

	"/alga.maintenance.v1.TokenUpkeepService/ListTokenUpkeep":                       {auth.SvcMaintenance},
	"/alga.maintenance.v1.TokenUpkeepService/RefreshConnection":                     {auth.SvcMaintenance},
	"/alga.maintenance.v1.TenantDirectoryService/ListConfiguredTenants":             {auth.SvcMaintenance},
	"/alga.maintenance.v1.GmailUpkeepService/ListGmailUpkeep":                       {auth.SvcMaintenance},
	"/alga.maintenance.v1.GmailUpkeepService/MaintainGmailProvider":                 {auth.SvcMaintenance},
	"/alga.maintenance.v1.CalendarUpkeepService/ListCalendarUpkeep":                 {auth.SvcMaintenance},
	"/alga.maintenance.v1.CalendarUpkeepService/MaintainCalendarProvider":           {auth.SvcMaintenance},
	"/alga.maintenance.v1.MaintenanceService/RunGoogleMaintenance":                  {user, auth.SvcCLI},
	"/alga.maintenance.v1.MaintenanceService/GetGoogleMaintenance":                  {user, auth.SvcCLI},
	"/alga.maintenance.v1.MaintenanceScheduleService/SyncGoogleMaintenanceSchedule": {auth.SvcOAuth},

	"/alga.gmail.v1.GmailProviderService/CreateGmailProvider":         {user},
	"/alga.gmail.v1.GmailProviderService/GetGmailProvider":            {user, auth.SvcOAuth},
	"/alga.gmail.v1.GmailProviderService/ListGmailProviders":          {user},
	"/alga.gmail.v1.GmailProviderService/UpdateGmailProvider":         {user},
	"/alga.gmail.v1.GmailProviderService/DeleteGmailProvider":         {user},
	"/alga.gmail.v1.GmailProviderService/ConnectGmailProvider":        {user},
	"/alga.gmail.v1.GmailProviderService/GetGmailProviderDiagnostics": {user},
	"/alga.gmail.v1.GmailProviderService/RefreshGmailProvider":        {user},
	"/alga.gmail.v1.GmailProviderService/GetGmailProviderActivity":    {user},
	"/alga.gmail.v1.GmailProviderService/ActivateGmailProvider":       {auth.SvcOAuth},
	"/alga.gmail.v1.GmailProviderService/ResetGmailProviders":         {auth.SvcOAuth},
	"/alga.gmail.v1.GmailProviderService/HandleGmailPush":             {auth.SvcGateway},
	"/alga.gmail.v1.InboundMailService/ListInboundMessages":           {auth.SvcPlatform},
	"/alga.gmail.v1.InboundMailService/StreamInboundMessages":         {auth.SvcPlatform},
	"/alga.gmail.v1.InboundMailService/AcknowledgeInboundMessages":    {auth.SvcPlatform},

	"/alga.calendar.v1.CalendarProviderService/CreateCalendarProvider":         {user},
	"/alga.calendar.v1.CalendarProviderService/GetCalendarProvider":            {user},
	"/alga.calendar.v1.CalendarProviderService/ListCalendarProviders":          {user},
	"/alga.calendar.v1.CalendarProviderService/UpdateCalendarProvider":         {user},
	"/alga.calendar.v1.CalendarProviderService/DeleteCalendarProvider":         {user},
	"/alga.calendar.v1.CalendarProviderService/ConnectCalendarProvider":        {user},
	"/alga.calendar.v1.CalendarProviderService/DisconnectCalendarProvider":     {user},
	"/alga.calendar.v1.CalendarProviderService/GetCalendarProviderDiagnostics": {user},
	"/alga.calendar.v1.CalendarProviderService/GetCalendarProviderActivity":    {user},
	"/alga.calendar.v1.CalendarProviderService/ActivateCalendarProvider":       {auth.SvcOAuth},
	"/alga.calendar.v1.CalendarProviderService/ResetCalendarProviders":         {auth.SvcOAuth},
	"/alga.calendar.v1.CalendarProviderService/HandleCalendarNotification":     {auth.SvcGateway},
	"/alga.calendar.v1.CalendarProviderService/RenewCalendarChannel":           {auth.SvcMaintenance},
	"/alga.calendar.v1.CalendarProviderService/VerifyCalendarChannel":          {auth.SvcMaintenance},
	"/alga.calendar.v1.CalendarChangeService/ListCalendarChanges":              {auth.SvcPlatform},
	"/alga.calendar.v1.CalendarChangeService/StreamCalendarChanges":            {auth.SvcPlatform},
	"/alga.calendar.v1.CalendarChangeService/AcknowledgeCalendarChanges":       {auth.SvcPlatform},
}

// callers are every identity a call can carry: users, each target, the outside callers, and one the
// suite never issues.
var callers = []string{user, auth.SvcGateway, auth.SvcSecrets, auth.SvcOAuth, auth.SvcGmail, auth.SvcCalendar,
	auth.SvcMaintenance, auth.SvcPlatform, auth.SvcCLI, "alga-google"}

// TestEveryRPCIsLimitedToItsTable walks every RPC of every target, registered as the binary registers
// them, and calls it as every identity over gRPC: the auth interceptor lets exactly the identities of
// whoMayCall through and refuses every other with PermissionDenied. Handlers past the interceptor run
// without their dependencies (the targets are not started): whatever they answer, it is not the
// interceptor's refusal.
func TestEveryRPCIsLimitedToItsTable(t *testing.T) {
	t.Parallel()
	const svcKey = "app-test-service-key-0123456789abcdef"
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(userKey), ServiceKey: []byte(svcKey),
		Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: app.ServiceIssuer})
	require.NoError(t, err)
	srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: v, Registerer: prometheus.NewRegistry()})
	built, err := app.NewTargetsWith(nil)
	require.NoError(t, err)
	for _, name := range app.AllTargets {
		built[name].Register(srv)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	users, _ := auth.NewSigner([]byte(userKey), "alga-psa", "alga-google")
	svcs, _ := auth.NewSigner([]byte(svcKey), app.ServiceIssuer, "alga-google")
	tokens := map[string]string{}
	for _, c := range callers {
		var tok string
		if c == user {
			tok, err = users.MintUser(auth.UserToken{Subject: "admin", Tenant: "t1", Permissions: []string{auth.PermSystemSettingsUpdate}})
		} else {
			tok, err = svcs.MintService(c, "t1", "", nil)
		}
		require.NoError(t, err)
		tokens[c] = tok
	}

	var methods []string
	for svc, info := range srv.GRPC.GetServiceInfo() {
		if strings.HasPrefix(svc, "grpc.") {
			continue
		}
		for _, m := range info.Methods {
			methods = append(methods, "/"+svc+"/"+m.Name)
		}
	}
	sort.Strings(methods)
	var expected []string
	for m := range whoMayCall {
		expected = append(expected, m)
	}
	sort.Strings(expected)
	require.Equal(t, expected, methods, "every registered RPC has a row in whoMayCall, and every row an RPC")

	refusals := []string{grpcserver.ReasonCallerNotAllowed, grpcserver.ReasonServiceOnly, grpcserver.ReasonNoAccessRule}
	for _, method := range methods {
		for _, caller := range callers {
			t.Run(fmt.Sprintf("%s as %s", method, caller), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(),
					"authorization", "Bearer "+tokens[caller]), 5*time.Second)
				defer cancel()
				err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
				refused := status.Code(err) == codes.PermissionDenied && slices.Contains(refusals, errs.ReasonOf(err))
				if slices.Contains(whoMayCall[method], caller) {
					require.False(t, refused, "%s may call %s: %v", caller, method, err)
				} else {
					require.True(t, refused, "%s must not call %s: %v", caller, method, err)
				}
			})
		}
	}
}
