// Package grpcclient dials peer services. Calls carry a short-lived service token (minted once per
// identity and reused until shortly before it expires, see auth.Signer.ServiceToken) naming the calling
// service and the tenant (and user) the call acts for, taken from the caller's verified identity.
package grpcclient

import (
	"context"
	"crypto/tls"
	"net"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/algapsa/alga-google/services/platform/auth"
)

// Dialer opens connections to peers. In single-process mode ContextDialer reaches the in-process
// listener, so calls still pass through the server's full interceptor chain.
type Dialer struct {
	Signer        *auth.Signer
	Service       string
	ContextDialer func(ctx context.Context, addr string) (net.Conn, error)
	// TLS, when set, dials network peers over TLS (presenting its certificate for mutual TLS); the
	// in-process listener (ContextDialer) is always plaintext.
	TLS *tls.Config
}

// Dial connects to addr with service credentials.
func (d Dialer) Dial(addr string) (*grpc.ClientConn, error) {
	return d.dial(addr, grpc.WithPerRPCCredentials(serviceCreds{signer: d.Signer, service: d.Service}))
}

// DialRaw connects without service credentials (the gateway forwards the browser's own token).
func (d Dialer) DialRaw(addr string) (*grpc.ClientConn, error) {
	return d.dial(addr)
}

func (d Dialer) dial(addr string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	transport := insecure.NewCredentials()
	if d.TLS != nil && d.ContextDialer == nil {
		transport = credentials.NewTLS(d.TLS)
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	}, extra...)
	if d.ContextDialer != nil {
		opts = append(opts, grpc.WithContextDialer(d.ContextDialer))
		addr = "passthrough:///in-process"
	}
	return grpc.NewClient(addr, opts...)
}

type serviceCreds struct {
	signer  *auth.Signer
	service string
}

func (c serviceCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	// An explicit authorization already set on the outgoing context wins (e.g. forwarded tokens).
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		return nil, nil
	}
	id, _ := auth.FromContext(ctx)
	tok, err := c.signer.ServiceToken(c.service, id.Tenant, id.Subject, id.Permissions)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (serviceCreds) RequireTransportSecurity() bool { return false }

// ActFor returns a context whose outgoing calls act for tenant (and optionally a user) as service.
// Background work (jobs, webhooks) uses it once it has established the tenant from trusted data.
func ActFor(ctx context.Context, service, tenant, subject string) context.Context {
	return auth.WithIdentity(ctx, auth.Identity{Service: service, Tenant: tenant, Subject: subject})
}
