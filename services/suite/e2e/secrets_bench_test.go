package e2e_test

import (
	"context"
	"fmt"
	"testing"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// BenchmarkSecretWriteRead measures one tenant secret written and read back through the secrets service
// (gRPC + interceptors + envelope encryption + audit rows) beside its baseline: the same write and read of
// the same bytes as plain SQL on the same database, in the same run. The difference is what custody costs.
func BenchmarkSecretWriteRead(b *testing.B) {
	s := harness.Start(b, harness.Options{Targets: "secrets"})
	ctx := context.Background()
	value := fmt.Sprintf("GOCSPX-%040d", 42)

	b.Run("baseline=plain-sql", func(b *testing.B) {
		pool := s.App.Deps().Pool
		if _, err := pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS public.bench_plain (tenant text, name text, value text, PRIMARY KEY (tenant, name))"); err != nil {
			b.Fatal(err)
		}
		for i := 0; b.Loop(); i++ {
			if _, err := pool.Exec(ctx, "INSERT INTO public.bench_plain VALUES ($1, $2, $3) ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value",
				"bench-tenant", "google_client_secret", value); err != nil {
				b.Fatal(err)
			}
			var got string
			if err := pool.QueryRow(ctx, "SELECT value FROM public.bench_plain WHERE tenant = $1 AND name = $2", "bench-tenant", "google_client_secret").Scan(&got); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("secrets-service", func(b *testing.B) {
		client := secretsv1.NewSecretsServiceClient(s.Conn(b))
		cctx := harness.WithToken(ctx, s.ServiceToken("oauth", "bench-tenant"))
		for b.Loop() {
			if _, err := client.PutSecrets(cctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "google_client_secret", Value: value}}}); err != nil {
				b.Fatal(err)
			}
			got, err := client.GetSecrets(cctx, &secretsv1.GetSecretsRequest{Names: []string{"google_client_secret"}})
			if err != nil || len(got.Secrets) != 1 || got.Secrets[0].Value != value {
				b.Fatalf("read back: %v %v", got, err)
			}
		}
	})
}
