// Package settings reads the settings of Bloodbank services and binaries
// the way the Python services read theirs: from the process environment and
// from a .env file (the environment wins), with names matched
// case-insensitively, so that one .env serves both.
//
// Each package that has settings declares them as a flat struct whose
// fields carry caarlos0/env tags (`env:"BB_PREFETCH" envDefault:"10"`) and
// a Validate method that names the variable of each problem: bus.Config,
// correlation.Settings, the gateway's and telemetry's Settings. A binary
// composes one struct of those parts and of its own, reads the variables
// once and parses every part from them:
//
//	vars, err := settings.Read(os.Environ(), ".env")
//	...
//	err = settings.Parse(vars, &cfg.Bus, &cfg.Redis, &cfg.Own)
//
// Every problem of every part is reported at once, each naming its
// variable. No value is ever quoted in an error, because a setting may be a
// password.
package settings

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
	"github.com/joho/godotenv"
)

// Vars are settings by name, upper-cased.
type Vars map[string]string

// Read returns the variables of environ (as os.Environ gives it) over those
// of the .env file at dotenv. A missing file reads as empty, and so does an
// empty path. Names are upper-cased: SERVICE_NAME, service_name and
// Service_Name are one setting.
func Read(environ []string, dotenv string) (Vars, error) {
	vars := Vars{}
	if dotenv != "" {
		data, err := os.ReadFile(dotenv)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("cannot read settings: %w", err)
		default:
			file, err := godotenv.UnmarshalBytes(data)
			if err != nil {
				// godotenv's message quotes the rest of the file, which
				// may hold passwords.
				return nil, fmt.Errorf("cannot read settings from %s: want KEY=value lines, with quoted values closed", dotenv)
			}
			for k, v := range file {
				vars[strings.ToUpper(k)] = v
			}
		}
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[strings.ToUpper(k)] = v
		}
	}
	return vars, nil
}

// Part is one package's settings: a pointer to a struct whose fields carry
// env tags (no nested structs), whose Validate reports each problem naming
// its variable, best as an *Error built by Join.
type Part interface {
	Validate() error
}

// Parse fills every part from vars, unset variables taking their
// envDefault, and validates it. It returns an *Error listing every value
// that does not parse and every problem Validate reports, or an error
// about a part that is not a struct of env-tagged fields (a programming
// error).
func Parse(vars Vars, parts ...Part) error {
	var problems []error
	for _, p := range parts {
		ps, err := parse(vars, p)
		if err != nil {
			return err
		}
		problems = append(problems, ps...)
	}
	return Join(problems...)
}

// Load is Read and then Parse.
func Load(environ []string, dotenv string, parts ...Part) error {
	vars, err := Read(environ, dotenv)
	if err != nil {
		return err
	}
	return Parse(vars, parts...)
}

func parse(vars Vars, p Part) ([]error, error) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("cannot read settings into %T: want a pointer to a struct", p)
	}
	err := env.ParseWithOptions(p, env.Options{Environment: vars})
	if err == nil {
		return []error{p.Validate()}, nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return nil, err
	}
	t := v.Elem().Type()
	var problems []error
	rest := maps.Clone(vars)
	for _, e := range agg.Errors {
		// caarlos0/env names the struct field; the user knows the variable.
		var pe env.ParseError
		if !errors.As(e, &pe) {
			return nil, fmt.Errorf("cannot read settings into %s: %w", t, e)
		}
		name := pe.Name
		if f, ok := t.FieldByName(pe.Name); ok {
			name, _, _ = strings.Cut(f.Tag.Get("env"), ",")
		}
		problems = append(problems, fmt.Errorf("%s: want %s", name, describe(pe.Type)))
		delete(rest, name)
	}
	// The values that parsed are validated too, so that every problem is
	// reported at once: those that did not parse stand at their defaults.
	v.Elem().SetZero()
	if err := env.ParseWithOptions(p, env.Options{Environment: rest}); err != nil {
		return nil, fmt.Errorf("cannot read settings into %s: %w", t, err)
	}
	return append(problems, p.Validate()), nil
}

func describe(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 500ms, 10s or 2m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// Error lists every invalid setting, each naming its variable.
type Error struct {
	Problems []error
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid settings: " + strings.Join(msgs, "; ")
}

// Unwrap gives errors.Is and errors.As each problem.
func (e *Error) Unwrap() []error { return e.Problems }

// Join returns an *Error with the problems that are not nil, those of an
// *Error among them taken one by one, sorted by message; or nil when there
// are none.
func Join(problems ...error) error {
	var all []error
	for _, p := range problems {
		var e *Error
		switch {
		case p == nil:
		case errors.As(p, &e):
			all = append(all, e.Problems...)
		default:
			all = append(all, p)
		}
	}
	if len(all) == 0 {
		return nil
	}
	slices.SortFunc(all, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return &Error{Problems: all}
}
