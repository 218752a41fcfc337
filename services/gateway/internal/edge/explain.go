package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/algapsa/alga-google/gen/validation"
)

// FieldNamingJSON is grpc-gateway's JSONPb whose request decoder names the offending field of a body it
// cannot decode, by its proto name and path ("inbound_defaults.board_id: must be a JSON string"):
// protojson's own errors name the JSON (camelCase) name or, for a wrong token, no field at all ("syntax
// error (line 1:42): unexpected token 7").
type FieldNamingJSON struct {
	*runtime.JSONPb
}

// NewDecoder implements runtime.Marshaler.
func (m FieldNamingJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		body, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		err = m.JSONPb.NewDecoder(bytes.NewReader(body)).Decode(v)
		if err == nil || errors.Is(err, io.EOF) {
			return err
		}
		if msg, ok := v.(proto.Message); ok {
			if fe := ExplainJSON(msg.ProtoReflect().Descriptor(), body, m.UnmarshalOptions); fe != nil {
				return fe
			}
		}
		return err
	})
}

// ExplainJSON finds the first field of body that does not decode as a field of md and says what it must
// be; nil when body decodes (or is not a JSON object at all, which edge.CheckRequest reports).
func ExplainJSON(md protoreflect.MessageDescriptor, body []byte, opts protojson.UnmarshalOptions) *validation.FieldError {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	return explainObject(md, obj, "", opts)
}

func explainObject(md protoreflect.MessageDescriptor, obj map[string]json.RawMessage, prefix string, opts protojson.UnmarshalOptions) *validation.FieldError {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fd := md.Fields().ByName(protoreflect.Name(k))
		if fd == nil {
			fd = md.Fields().ByJSONName(k)
		}
		if fd == nil {
			return validation.Invalid(prefix+clipName(k), "is not a field of %s", md.FullName())
		}
		name := prefix + string(fd.Name())
		one, _ := json.Marshal(map[string]json.RawMessage{k: obj[k]})
		decode := protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown}
		if decode.Unmarshal(one, dynamicpb.NewMessage(md)) == nil {
			continue
		}
		// Look inside a message (or a list of them) for the field that is wrong there.
		if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && !wellKnown(fd.Message()) {
			if fd.IsList() {
				var items []json.RawMessage
				if json.Unmarshal(obj[k], &items) == nil {
					for i, it := range items {
						var inner map[string]json.RawMessage
						if json.Unmarshal(it, &inner) == nil {
							if fe := explainObject(fd.Message(), inner, name+"["+strconv.Itoa(i)+"].", opts); fe != nil {
								return fe
							}
						}
					}
				}
			} else {
				var inner map[string]json.RawMessage
				if json.Unmarshal(obj[k], &inner) == nil {
					if fe := explainObject(fd.Message(), inner, name+".", opts); fe != nil {
						return fe
					}
				}
			}
		}
		return validation.Invalid(name, "must be %s", expected(fd))
	}
	return nil
}

// expected describes the JSON a field takes.
func expected(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "a JSON object of " + kind(fd.MapValue())
	}
	if fd.IsList() {
		return "a JSON array of " + kind(fd)
	}
	return kind(fd)
}

func kind(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "a JSON string"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.EnumKind:
		var names []string
		vals := fd.Enum().Values()
		for i := 0; i < vals.Len(); i++ {
			names = append(names, string(vals.Get(i).Name()))
		}
		return "one of " + strings.Join(names, ", ")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if wellKnown(fd.Message()) {
			return "a " + string(fd.Message().Name()) + " in its JSON form"
		}
		return "a JSON object"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	}
	return "an integer (a JSON number or a decimal string)"
}

func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

// clipName keeps an unknown key printable and short in the answer.
func clipName(k string) string {
	if k == "" {
		return `""` // the empty key: still a name the answer can show
	}
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}
