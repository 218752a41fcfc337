package edge_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gateway/internal/edge"
)

// A body grpc-gateway cannot decode is answered naming the field by its proto path and what it must be.
func TestExplainJSON(t *testing.T) {
	t.Parallel()
	create := (&gmailv1.CreateGmailProviderRequest{}).ProtoReflect().Descriptor()
	put := (&secretsv1.PutSecretsRequest{}).ProtoReflect().Descriptor()
	for body, want := range map[string]string{
		`{"mailbox":"a@b.test","display_name":12345}`:       "display_name: must be a JSON string",
		`{"displayName":12345}`:                             "display_name: must be a JSON string",
		`{"label_filters":"x"}`:                             "label_filters: must be a JSON array of a JSON string",
		`{"active":"maybe"}`:                                "active: must be true or false",
		`{"inbound_defaults":7}`:                            "inbound_defaults: must be a JSON object",
		`{"inbound_defaults":{"board_id":5}}`:               "inbound_defaults.board_id: must be a JSON string",
		`{"no_such_field":1}`:                               "no_such_field: is not a field of alga.gmail.v1.CreateGmailProviderRequest",
		`{"mailbox":"a@b.test","inbound_defaults":{"x":1}}`: "inbound_defaults.x: is not a field of alga.gmail.v1.InboundDefaults",
	} {
		fe := edge.ExplainJSON(create, []byte(body), protojson.UnmarshalOptions{})
		require.NotNil(t, fe, body)
		require.Equal(t, want, fe.Error(), body)
	}
	fe := edge.ExplainJSON(put, []byte(`{"writes":[{"name":"a","value":"b"},{"name":"c","expected_version":"x"}]}`), protojson.UnmarshalOptions{})
	require.NotNil(t, fe)
	require.Equal(t, "writes[1].expected_version: must be an integer (a JSON number or a decimal string)", fe.Error())
	require.Nil(t, edge.ExplainJSON(create, []byte(`{"mailbox":"a@b.test","label_filters":["INBOX"]}`), protojson.UnmarshalOptions{}))
}
