package cqrs

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/33god/bloodbank-go/domains"
)

// routingKeyOf returns the routing key and registered type of v, or of the
// payload a command type embeds.
func routingKeyOf(reg *domains.Registry, v any) (string, *domains.EventType, error) {
	key, err := reg.RoutingKeyFor(v)
	if errors.Is(err, domains.ErrUnknownEventType) {
		err = fmt.Errorf("%T is neither a registered payload type nor a struct embedding one: %w", v, domains.ErrUnknownEventType)
		if rv := deref(reflect.ValueOf(v)); rv.Kind() == reflect.Struct {
			for f, fv := range rv.Fields() {
				if !f.Anonymous {
					continue
				}
				if !f.IsExported() {
					// Its value cannot be read: its type names the key, unless
					// the key is a template filled from the value.
					fv = reflect.Zero(f.Type)
				}
				if k, ferr := reg.RoutingKeyFor(deref(fv).Interface()); ferr == nil {
					key, err = k, nil
					break
				}
			}
		}
	}
	if err != nil {
		return "", nil, err
	}
	et, err := reg.LookupKey(key)
	return key, et, err
}

// deref follows pointers; a nil pointer stands for the zero value it points to.
func deref(rv reflect.Value) reflect.Value {
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			rv = reflect.Zero(rv.Type().Elem())
		} else {
			rv = rv.Elem()
		}
	}
	return rv
}

// clone copies proto for one message, and for a pointer the value it points
// to, so that concurrent messages never decode into the same command.
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
