package grpcserver

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
)

// Invalid UTF-8 cannot cross the wire in a proto3 string, but a message built in process (the gateway
// mapping a path parameter) can hold it; map keys and values are walked too.
func TestCheckText(t *testing.T) {
	require.NoError(t, checkText(&secretsv1.DescribeSecretsRequest{Names: []string{"a", "é"}}))
	require.ErrorContains(t, checkText(&secretsv1.DescribeSecretsRequest{Names: []string{"a", "\xf0\x28\x8c\x28"}}), "names[1]: must be valid UTF-8")

	s, err := structpb.NewStruct(map[string]any{"outer": map[string]any{"inner": "x\x00"}})
	require.NoError(t, err)
	require.ErrorContains(t, checkText(s), "fields[outer].struct_value.fields[inner].string_value: must not contain NUL bytes")
	s, err = structpb.NewStruct(map[string]any{"k\x00": "v"})
	require.NoError(t, err)
	require.ErrorContains(t, checkText(s), "fields (a key): must not contain NUL bytes")
	require.NoError(t, checkText("not a message"))
}
