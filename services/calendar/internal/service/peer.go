package service

import (
	"context"

	"google.golang.org/grpc"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
)

// calendarKind is the oauth service's name for Calendar connections.
const calendarKind = oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR

// PeerOAuth is OAuth over gRPC to the oauth service.
type PeerOAuth struct {
	// Conn returns the (shared) connection to the oauth target.
	Conn func() (*grpc.ClientConn, error)
}

// actFor is the identity of background calls: the calendar service acting for a tenant.
func actFor(ctx context.Context, tenant string) context.Context {
	return grpcclient.ActFor(ctx, "calendar", tenant, "")
}

func (o PeerOAuth) AccessToken(ctx context.Context, tenant, providerID string) (Token, error) {
	return o.accessToken(ctx, tenant, providerID, false)
}

func (o PeerOAuth) RefreshAccessToken(ctx context.Context, tenant, providerID string) (Token, error) {
	return o.accessToken(ctx, tenant, providerID, true)
}

func (o PeerOAuth) accessToken(ctx context.Context, tenant, providerID string, force bool) (Token, error) {
	conn, err := o.Conn()
	if err != nil {
		return Token{}, err
	}
	res, err := oauthv1.NewTokenServiceClient(conn).GetAccessToken(actFor(ctx, tenant), &oauthv1.GetAccessTokenRequest{
		Kind: calendarKind, ProviderId: providerID, ForceRefresh: force,
	})
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: res.GetAccessToken(), ClientID: res.GetClientId(), AccountEmail: res.GetAccountEmail()}, nil
}

func (o PeerOAuth) ConnectionStatus(ctx context.Context, tenant, providerID string) (string, error) {
	conn, err := o.Conn()
	if err != nil {
		return "", err
	}
	res, err := oauthv1.NewTokenServiceClient(conn).GetConnection(actFor(ctx, tenant), &oauthv1.GetConnectionRequest{
		Kind: calendarKind, ProviderId: providerID,
	})
	if err != nil {
		return "", err
	}
	return res.GetConnection().GetStatus().String(), nil
}

func (o PeerOAuth) DeleteConnection(ctx context.Context, tenant, providerID string, revoke bool) error {
	conn, err := o.Conn()
	if err != nil {
		return err
	}
	_, err = oauthv1.NewTokenServiceClient(conn).DeleteConnection(actFor(ctx, tenant), &oauthv1.DeleteConnectionRequest{
		Kind: calendarKind, ProviderId: providerID, Revoke: revoke,
	})
	return err
}

// BeginAuthorization acts for the user in ctx (the service credentials carry their identity).
func (o PeerOAuth) BeginAuthorization(ctx context.Context, providerID, loginHint string) (string, string, error) {
	conn, err := o.Conn()
	if err != nil {
		return "", "", err
	}
	res, err := oauthv1.NewOAuthFlowServiceClient(conn).BeginAuthorization(ctx, &oauthv1.BeginAuthorizationRequest{
		Kind: calendarKind, ProviderId: providerID, LoginHint: loginHint,
	})
	if err != nil {
		return "", "", err
	}
	return res.GetAuthorizationUrl(), res.GetBrowserBinding(), nil
}

func (o PeerOAuth) GoogleConfig(ctx context.Context) (GoogleConfig, error) {
	conn, err := o.Conn()
	if err != nil {
		return GoogleConfig{}, err
	}
	res, err := oauthv1.NewGoogleSetupServiceClient(conn).GetGoogleConfig(ctx, &oauthv1.GetGoogleConfigRequest{})
	if err != nil {
		return GoogleConfig{}, err
	}
	c := res.GetConfig()
	return GoogleConfig{CalendarReady: c.GetCalendarReady(), UseSameApp: c.GetUseSameApp(), Missing: c.GetMissing()}, nil
}
