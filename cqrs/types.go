package cqrs

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/33god/bloodbank-go/domains"
)

// routingKeyOf returns the routing key a Go value travels under and its
// registered type: the value's own registration, or, for a command type that
// adds behaviour to a pure-data payload, that of the payload it embeds.
func routingKeyOf(reg *domains.Registry, v any) (string, *domains.EventType, error) {
	key, err := reg.RoutingKeyFor(v)
	if err == nil {
		et, lerr := reg.LookupKey(key)
		return key, et, lerr
	}
	if !errors.Is(err, domains.ErrUnknownEventType) {
		return "", nil, err
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			rv = reflect.Zero(rv.Type().Elem())
			continue
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Struct {
		t := rv.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.Anonymous {
				continue
			}
			fv := rv.Field(i)
			if !f.IsExported() {
				// Its value cannot be read: its type names the key, unless
				// the key is a template filled from the value.
				fv = reflect.Zero(f.Type)
			}
			if k, et, ferr := routingKeyOfEmbedded(reg, fv); ferr == nil {
				return k, et, nil
			}
		}
	}
	return "", nil, fmt.Errorf("%T is neither a registered payload type nor a struct embedding one: %w", v, domains.ErrUnknownEventType)
}

func routingKeyOfEmbedded(reg *domains.Registry, fv reflect.Value) (string, *domains.EventType, error) {
	if fv.Kind() == reflect.Pointer && fv.IsNil() {
		fv = reflect.Zero(fv.Type().Elem())
	}
	key, err := reg.RoutingKeyFor(fv.Interface())
	if err != nil {
		return "", nil, err
	}
	et, err := reg.LookupKey(key)
	return key, et, err
}

// clone returns a copy of proto for one message: a value is copied as Go
// copies values; for a pointer, the value it points to is copied, so that
// concurrent messages never decode into the same command.
func clone[C any](proto C) C {
	v := reflect.ValueOf(&proto).Elem()
	if v.Kind() != reflect.Pointer {
		return proto
	}
	n := reflect.New(v.Type().Elem())
	if !v.IsNil() {
		n.Elem().Set(v.Elem())
	}
	return n.Interface().(C)
}
