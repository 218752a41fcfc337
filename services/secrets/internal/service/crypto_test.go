package service_test

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/secrets"
)

// dumpSchema returns every row of every table of the secrets schema as text.
func dumpSchema(t *testing.T, b *testBundle) string {
	t.Helper()
	ctx := ctxTimeout(t)
	rows, err := b.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'secrets' AND table_type = 'BASE TABLE'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "secrets")
	require.Contains(t, tables, "data_keys")
	require.Contains(t, tables, "audit")
	var sb strings.Builder
	for _, tbl := range tables {
		rows, err := b.pool.Query(ctx, "SELECT t::text FROM secrets."+pgx.Identifier{tbl}.Sanitize()+" t")
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, s := range texts {
			sb.WriteString(s)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

func pgDump(t *testing.T, dbURL string) string {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin/pg_dump"
	if _, err := os.Stat(bin); err != nil {
		bin, err = exec.LookPath("pg_dump")
		require.NoError(t, err, "pg_dump is needed for this test")
	}
	out, err := exec.Command(bin, "--dbname="+dbURL, "--schema=secrets").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "COPY secrets.secrets")
	return string(out)
}

func TestNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const planted = "planted-CLIENT-secret-Zq9Vm-Tkrw"
	const tail = "Tkrw" // last four characters: no hex digits, so a bytea's hex text cannot contain them by chance
	b.put(t, "t1", "acme_client_secret", planted, "acme_calendar_client_secret", planted, "acme_project_id", planted)
	b.put(t, "t2", "acme_client_secret", planted)
	require.Equal(t, planted, b.get(t, b.client, "t1", "acme_client_secret")["acme_client_secret"])
	d, err := b.client.DescribeSecrets(b.admin(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Equal(t, "••••"+tail, d.GetSecrets()[0].GetHint())
	require.NotContains(t, d.String(), planted)

	hexed := hex.EncodeToString([]byte(planted))
	for what, text := range map[string]string{"rows": dumpSchema(t, b), "pg_dump": pgDump(t, b.dbURL), "logs": b.logs.String()} {
		require.NotContains(t, text, planted, what)
		require.NotContains(t, text, tail, what)
		require.NotContains(t, text, hexed, what)
		require.NotContains(t, strings.ToLower(text), strings.ToLower(hexed[len(hexed)-8:]), what+": hex of the last four characters")
	}
}

// swap exchanges the stored ciphertexts (nonce and ciphertext) of two rows.
func swap(t *testing.T, b *testBundle, tenantA, nameA, tenantB, nameB string) {
	t.Helper()
	_, err := b.pool.Exec(ctxTimeout(t), `
		WITH a AS (SELECT nonce, ciphertext FROM secrets.secrets WHERE tenant = $1 AND name = $2),
		     b AS (SELECT nonce, ciphertext FROM secrets.secrets WHERE tenant = $3 AND name = $4)
		UPDATE secrets.secrets s SET nonce = CASE WHEN s.tenant = $1 AND s.name = $2 THEN b.nonce ELSE a.nonce END,
		                             ciphertext = CASE WHEN s.tenant = $1 AND s.name = $2 THEN b.ciphertext ELSE a.ciphertext END
		FROM a, b
		WHERE (s.tenant = $1 AND s.name = $2) OR (s.tenant = $3 AND s.name = $4)`, tenantA, nameA, tenantB, nameB)
	require.NoError(t, err)
}

func TestSwappedCiphertextsFailLoudly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "t1", "alpha", "value-alpha", "beta", "value-beta")
	b.put(t, "t2", "alpha", "value-alpha-t2")

	// Two rows of one tenant.
	swap(t, b, "t1", "alpha", "t1", "beta")
	_, err := b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"alpha"}})
	requireCode(t, err, codes.DataLoss)
	_, err = b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"beta"}})
	requireCode(t, err, codes.DataLoss)
	swap(t, b, "t1", "alpha", "t1", "beta")
	require.Equal(t, map[string]string{"alpha": "value-alpha", "beta": "value-beta"}, b.get(t, b.client, "t1", "alpha", "beta"))

	// The same name across tenants.
	swap(t, b, "t1", "alpha", "t2", "alpha")
	_, err = b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"alpha"}})
	requireCode(t, err, codes.DataLoss)
	_, err = b.client.GetSecrets(b.service(t, "t2"), &secretsv1.GetSecretsRequest{Names: []string{"alpha"}})
	requireCode(t, err, codes.DataLoss)
	swap(t, b, "t1", "alpha", "t2", "alpha")

	// An old version replayed under a newer version number.
	_, err = b.pool.Exec(ctxTimeout(t), `UPDATE secrets.secrets SET version = version + 1 WHERE tenant = 't1' AND name = 'beta'`)
	require.NoError(t, err)
	_, err = b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"beta"}})
	requireCode(t, err, codes.DataLoss)

	// Data keys swapped between tenants.
	_, err = b.pool.Exec(ctxTimeout(t), `
		UPDATE secrets.data_keys d SET wrapped_key = o.wrapped_key
		FROM secrets.data_keys o WHERE d.tenant <> o.tenant`)
	require.NoError(t, err)
	_, err = b.client.GetSecrets(b.service(t, "t2"), &secretsv1.GetSecretsRequest{Names: []string{"alpha"}})
	requireCode(t, err, codes.DataLoss)
	_, err = b.client.DescribeSecrets(b.admin(t, "t2"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err, "describe needs no decryption for names without a hint")
}

func TestRotateKEK(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxTimeout(t)
	tenants := []string{"t1", "t2", "t3"}
	for _, tn := range tenants {
		b.put(t, tn, "acme_client_secret", "secret-of-"+tn+"-abcdefgh")
	}

	// Replicas during the rotation hold the new key as current and the old one as previous.
	newKEK := newKey(t)
	during := b.serve(t, secrets.Config{KEKBase64: b64(newKEK), KEKID: "kek-2", KEKPrevious: "kek-1:" + b64(b.kek), Backend: "postgres"})
	b.put(t, "t4", "acme_client_secret", "secret-of-t4-abcdefgh") // a new tenant, still via the old replica

	// Readers keep working while the rotation runs.
	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	readErrs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, tn := range tenants {
				resp, err := during.GetSecrets(b.service(t, tn), &secretsv1.GetSecretsRequest{Names: []string{"acme_client_secret"}})
				if err == nil && (len(resp.GetSecrets()) != 1 || resp.GetSecrets()[0].GetValue() != "secret-of-"+tn+"-abcdefgh") {
					err = context.Canceled
				}
				if err != nil {
					select {
					case readErrs <- err:
					default:
					}
					return
				}
				reads.Add(1)
			}
		}
	}()
	n, err := secrets.RotateKEK(ctx, b.pool, b.kek, newKEK, "kek-2", logging.Discard())
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, 4, n)
	select {
	case err := <-readErrs:
		t.Fatalf("a read failed during rotation: %v", err)
	default:
	}
	require.Positive(t, reads.Load())

	usage, err := secrets.KEKUsage(ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"kek-2": 4}, usage)

	// Running it again finds nothing to do.
	n, err = secrets.RotateKEK(ctx, b.pool, b.kek, newKEK, "kek-2", logging.Discard())
	require.NoError(t, err)
	require.Zero(t, n)

	// After the rotation the old KEK is no longer needed: a replica with only the new key reads everything.
	after := b.serve(t, secrets.Config{KEKBase64: b64(newKEK), KEKID: "kek-2", Backend: "postgres"})
	for _, tn := range append(tenants, "t4") {
		require.Equal(t, "secret-of-"+tn+"-abcdefgh", b.get(t, after, tn, "acme_client_secret")["acme_client_secret"])
	}
	// …and a replica with only the old key refuses to start rather than fail on every request.
	_, err = b.tryServe(t, secrets.Config{KEKBase64: b64(b.kek), KEKID: "kek-1", Backend: "postgres"})
	require.ErrorContains(t, err, `KEK id "kek-2"`)

	// A rotation with the wrong old key changes nothing and says so.
	_, err = secrets.RotateKEK(ctx, b.pool, newKey(t), newKey(t), "kek-3", logging.Discard())
	require.Error(t, err)
	// Reusing a key id for a different key is refused.
	_, err = secrets.RotateKEK(ctx, b.pool, newKEK, newKey(t), "kek-2", logging.Discard())
	require.ErrorContains(t, err, "new key id")

	audit, err := after.ListSecretAudit(b.admin(t, "t1"), &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	rotations := 0
	for _, e := range audit.GetEvents() {
		if e.GetAction() == "rotate" {
			rotations++
			require.Empty(t, e.GetName())
		}
	}
	require.Equal(t, 1, rotations)
	require.NotContains(t, b.logs.String(), "secret-of-")
}

func TestShredTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxTimeout(t)
	b.put(t, "doomed", "acme_client_secret", "doomed-secret-value-1", "acme_client_id", "doomed-id")
	b.put(t, "keeper", "acme_client_secret", "keeper-secret-value-1")

	// A "backup" of the doomed tenant's rows taken before the shred.
	type row struct {
		name              string
		version           int64
		nonce, ciphertext []byte
	}
	rows, err := b.pool.Query(ctx, `SELECT name, version, nonce, ciphertext FROM secrets.secrets WHERE tenant = 'doomed'`)
	require.NoError(t, err)
	backup, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.name, &x.version, &x.nonce, &x.ciphertext)
	})
	require.NoError(t, err)
	require.Len(t, backup, 2)

	require.NoError(t, secrets.ShredTenant(ctx, b.pool, "doomed"))
	require.Empty(t, b.get(t, b.client, "doomed", "acme_client_secret", "acme_client_id"))
	d, err := b.client.DescribeSecrets(b.admin(t, "doomed"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Empty(t, d.GetSecrets())
	require.Equal(t, "keeper-secret-value-1", b.get(t, b.client, "keeper", "acme_client_secret")["acme_client_secret"])

	// The tenant can start over (new data key); the backed-up ciphertexts never open again.
	b.put(t, "doomed", "fresh", "fresh-value")
	for _, r := range backup {
		_, err := b.pool.Exec(ctx, `INSERT INTO secrets.secrets (tenant, name, version, nonce, ciphertext, updated_by)
			VALUES ('doomed', $1, $2, $3, $4, 'restore')`, r.name, r.version, r.nonce, r.ciphertext)
		require.NoError(t, err)
		_, err = b.client.GetSecrets(b.service(t, "doomed"), &secretsv1.GetSecretsRequest{Names: []string{r.name}})
		requireCode(t, err, codes.DataLoss)
	}
	require.Equal(t, "fresh-value", b.get(t, b.client, "doomed", "fresh")["fresh"])

	audit, err := b.client.ListSecretAudit(b.admin(t, "doomed"), &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	var actions []string
	for _, e := range audit.GetEvents() {
		actions = append(actions, e.GetAction())
	}
	require.Contains(t, actions, "shred")

	require.Error(t, secrets.ShredTenant(ctx, b.pool, "../x"))
}
