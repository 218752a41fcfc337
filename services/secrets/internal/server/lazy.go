package server

import (
	"context"
	"sync/atomic"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Lazy is a SecretsService registered before the gRPC server starts serving (grpc-go refuses
// registrations after Serve) that answers Unavailable until the real service is set.
type Lazy struct {
	secretsv1.UnimplementedSecretsServiceServer
	s atomic.Pointer[Server]
}

// Set makes the service live.
func (l *Lazy) Set(s *Server) { l.s.Store(s) }

func (l *Lazy) get() (*Server, error) {
	if s := l.s.Load(); s != nil {
		return s, nil
	}
	return nil, errs.Unavailable("SECRETS_NOT_READY", "the secrets service is starting; retry shortly")
}

// PutSecrets implements SecretsService.
func (l *Lazy) PutSecrets(ctx context.Context, req *secretsv1.PutSecretsRequest) (*secretsv1.PutSecretsResponse, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.PutSecrets(ctx, req)
}

// DescribeSecrets implements SecretsService.
func (l *Lazy) DescribeSecrets(ctx context.Context, req *secretsv1.DescribeSecretsRequest) (*secretsv1.DescribeSecretsResponse, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.DescribeSecrets(ctx, req)
}

// GetSecrets implements SecretsService.
func (l *Lazy) GetSecrets(ctx context.Context, req *secretsv1.GetSecretsRequest) (*secretsv1.GetSecretsResponse, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.GetSecrets(ctx, req)
}

// DeleteSecrets implements SecretsService.
func (l *Lazy) DeleteSecrets(ctx context.Context, req *secretsv1.DeleteSecretsRequest) (*secretsv1.DeleteSecretsResponse, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.DeleteSecrets(ctx, req)
}

// ListSecretAudit implements SecretsService.
func (l *Lazy) ListSecretAudit(ctx context.Context, req *secretsv1.ListSecretAuditRequest) (*secretsv1.ListSecretAuditResponse, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.ListSecretAudit(ctx, req)
}
