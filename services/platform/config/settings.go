package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Binder declares settings: each one a flag with a matching environment variable, whose value (when
// set) becomes the flag's default. The platform binds the shared settings (Config.Bind); every service
// declares its own beside its code (a Bind method on the service's Config), so `serve --help` lists
// each setting once, next to the service that reads it.
type Binder struct {
	fs      *flag.FlagSet
	envErrs []error
}

// NewBinder declares settings on fs.
func NewBinder(fs *flag.FlagSet) *Binder { return &Binder{fs: fs} }

func (b *Binder) usage(help, env string) string { return fmt.Sprintf("%s (env %s)", help, env) }

// String declares a string setting.
//
// --help shows the declared default, never the environment's value: string settings carry keys and
// database URLs with passwords, and a help text is printed to terminals and pod logs.
func (b *Binder) String(p *string, name, env, def, help string) {
	b.fs.StringVar(p, name, def, b.usage(help, env))
	if v, ok := os.LookupEnv(env); ok {
		*p = v
	}
}

// Duration declares a duration setting ("90s", "24h"). A malformed environment value is reported when
// the flags are parsed, like a malformed flag.
func (b *Binder) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	b.fs.Var(newEnvValue(b, p, def, env, time.ParseDuration), name, b.usage(help, env))
}

// Int declares an integer setting.
func (b *Binder) Int(p *int, name, env string, def int, help string) {
	b.fs.Var(newEnvValue(b, p, def, env, strconv.Atoi), name, b.usage(help, env))
}

// Bool declares a boolean setting.
func (b *Binder) Bool(p *bool, name, env string, def bool, help string) {
	v := newEnvValue(b, p, def, env, strconv.ParseBool)
	b.fs.Var(boolValue{v}, name, b.usage(help, env))
}

// Err reports the environment values of declared settings that did not parse (a flag with a bad value
// fails flag parsing by itself). Call it after parsing.
func (b *Binder) Err() error { return errors.Join(b.envErrs...) }

type envValue[T any] struct {
	p     *T
	parse func(string) (T, error)
}

func newEnvValue[T any](b *Binder, p *T, def T, env string, parse func(string) (T, error)) *envValue[T] {
	*p = def
	if raw, ok := os.LookupEnv(env); ok {
		v, err := parse(raw)
		if err != nil {
			b.envErrs = append(b.envErrs, fmt.Errorf("%s: %q is not a valid value", env, raw))
		} else {
			*p = v
		}
	}
	return &envValue[T]{p: p, parse: parse}
}

func (v *envValue[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return fmt.Sprint(*v.p)
}

func (v *envValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

type boolValue struct{ *envValue[bool] }

func (boolValue) IsBoolFlag() bool { return true }
