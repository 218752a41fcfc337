package grpcserver

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/algapsa/alga-google/gen/validation"
)

// checkText refuses a request with a NUL byte (or invalid UTF-8, which only a message built in process
// can hold: the wire decoder refuses it) in any string field, however deep — repeated fields and map
// keys and values included — naming the field by its proto path ("label_filters[2]", "values[name]").
// No text field of any API can mean a NUL, PostgreSQL text refuses it and logs would cut it; checking
// every message generically here means no hand-written Validate can forget it, for gRPC callers and
// the gateway alike.
func checkText(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	return checkMessage(m.ProtoReflect(), "")
}

func checkMessage(m protoreflect.Message, prefix string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValue(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]")
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				key := k.String()
				if fd.MapKey().Kind() == protoreflect.StringKind {
					if err = checkString(key, name+" (a key)"); err != nil {
						return false
					}
				}
				if !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
					key = "?"
				}
				err = checkValue(fd.MapValue(), mv, name+"["+key+"]")
				return err == nil
			})
		default:
			err = checkValue(fd, v, name)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return checkString(v.String(), name)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v.Message(), name+".")
	}
	return nil
}

func checkString(s, name string) error {
	if !utf8.ValidString(s) {
		return validation.Invalid(name, "must be valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return validation.Invalid(name, "must not contain NUL bytes")
	}
	return nil
}
