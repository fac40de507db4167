package domains_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/33god/bloodbank-go/domains"
)

// A small domain of the test's own, registered through the public API only,
// as a third-party service would.

type orderStatus string

func (orderStatus) EnumValues() []string { return []string{"created", "cancelled"} }

type orderEvent struct {
	Status  orderStatus `json:"status"`
	OrderID string      `json:"order_id"`
	Note    *string     `json:"note"`
}

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

type placeOrder struct {
	Sku string `json:"sku"`
}

type cartEmptied struct {
	CartID string `json:"cart_id"`
}

type regionEvent struct {
	Region string `json:"region"`
}

func shopRegistry(t *testing.T) *domains.Registry {
	t.Helper()
	r := domains.NewRegistry()
	err := errors.Join(
		domains.RegisterDomain(r, "shop/order",
			domains.Spec[orderEvent]{
				RoutingKey: "shop.order.{status}",
				Aliases:    []string{"OrderEventPayload"},
				Example:    orderEvent{Status: "created", OrderID: "o-1"},
			},
			domains.Spec[placeOrder]{
				RoutingKey: "shop.order.place",
				Kind:       domains.Command,
				Result:     "shop.order.created",
				Example:    placeOrder{Sku: "sku-1"},
			},
		),
		domains.Register(r, domains.Spec[cartEmptied]{
			RoutingKey: "shop.cart.emptied",
			Domain:     "shop/cart",
			Example:    cartEmptied{CartID: "c-1"},
		}),
		domains.Register(r, domains.Spec[regionEvent]{
			RoutingKey: "geo.{region}.changed",
			Example:    regionEvent{Region: "eu"},
		}),
	)
	if err != nil {
		t.Fatalf("cannot build the test registry: %v", err)
	}
	return r
}

func TestRegister_sameRoutingKeyDifferentTypeFails(t *testing.T) {
	r := shopRegistry(t)
	err := domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.cart.emptied", Example: orderPlaced{OrderID: "o-1"}})
	if !errors.Is(err, domains.ErrAlreadyRegistered) {
		t.Fatalf("Register = %v, want ErrAlreadyRegistered", err)
	}
	e, _ := r.Lookup("shop.cart.emptied")
	if e.Name() != "domains_test.cartEmptied" {
		t.Errorf("the first registration was replaced by %s", e.Name())
	}
}

func TestRegisterDomain_registersWhatItCanAndReportsEveryFailure(t *testing.T) {
	r := domains.NewRegistry()
	err := domains.RegisterDomain(r, "shop/order",
		domains.Spec[orderPlaced]{RoutingKey: "shop.order.placed", Example: orderPlaced{OrderID: "o-1"}},
		domains.Spec[placeOrder]{RoutingKey: "shop.order.place"}, // no example
		domains.Spec[cartEmptied]{RoutingKey: "shop.cart.emptied", Domain: "shop/cart", Example: cartEmptied{CartID: "c-1"}},
		domains.Spec[regionEvent]{RoutingKey: "shop.order.#", Example: regionEvent{Region: "eu"}},
	)
	if !errors.Is(err, domains.ErrInvalidSpec) || !strings.HasPrefix(err.Error(), "cannot register domain shop/order: ") ||
		!strings.Contains(err.Error(), "placeOrder") || !strings.Contains(err.Error(), "regionEvent") {
		t.Errorf("RegisterDomain = %v, want both invalid specs reported for domain shop/order", err)
	}
	for key, domain := range map[string]string{"shop.order.placed": "shop/order", "shop.cart.emptied": "shop/cart"} {
		if e, err := r.LookupKey(key); err != nil || e.Domain() != domain {
			t.Errorf("LookupKey(%s) = %v, %v; want it registered in %s", key, e, err, domain)
		}
	}
}

func TestRegister_sameTypeSameKeyIsNoOp(t *testing.T) {
	r := shopRegistry(t)
	before := len(r.Events(domains.Filter{}))
	err := domains.Register(r, domains.Spec[cartEmptied]{RoutingKey: "shop.cart.emptied", Domain: "shop/cart", Example: cartEmptied{CartID: "c-2"}})
	if err != nil {
		t.Fatalf("Register again = %v, want nil", err)
	}
	if after := len(r.Events(domains.Filter{})); after != before {
		t.Errorf("events: %d after re-registering, want %d", after, before)
	}
}

func TestRegister_conflictsFail(t *testing.T) {
	tests := []struct {
		name     string
		register func(*domains.Registry) error
	}{
		{"same type under a second key", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[cartEmptied]{RoutingKey: "shop.cart.cleared", Example: cartEmptied{CartID: "c"}})
		}},
		{"alias taken", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.order.paid", Aliases: []string{"OrderEventPayload"}, Example: orderPlaced{OrderID: "o"}})
		}},
		{"exact key a template matches", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.order.cancelled", Example: orderPlaced{OrderID: "o"}})
		}},
		{"template overlapping a template", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[regionEvent2]{RoutingKey: "geo.eu.{what}", Example: regionEvent2{What: "changed"}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.register(shopRegistry(t)); !errors.Is(err, domains.ErrAlreadyRegistered) {
				t.Fatalf("Register = %v, want ErrAlreadyRegistered", err)
			}
		})
	}
}

type regionEvent2 struct {
	What string `json:"what"`
}

func TestRegister_exactKeyOutsideTemplateEnumIsAllowed(t *testing.T) {
	r := shopRegistry(t)
	// "shipped" is not an orderStatus, so shop.order.{status} never matches it.
	if err := domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.order.shipped", Example: orderPlaced{OrderID: "o"}}); err != nil {
		t.Fatalf("Register = %v, want nil", err)
	}
	if e, _ := r.LookupKey("shop.order.shipped"); e.Name() != "domains_test.orderPlaced" {
		t.Errorf("LookupKey = %s, want domains_test.orderPlaced", e.Name())
	}
}

// withChan encodes fine, thanks to its MarshalJSON, but has a field no
// JSON Schema can describe.
type withChan struct {
	C chan int `json:"c"`
}

func (withChan) MarshalJSON() ([]byte, error) { return []byte(`{}`), nil }

type withBadDefault struct {
	N int `json:"n" default:"many"`
}

type withMinLength struct {
	Name string `json:"name" jsonschema:"minLength=1"`
}

type withOptionalKey struct {
	Kind *string `json:"kind"`
}

func TestRegister_invalidSpecFails(t *testing.T) {
	tests := []struct {
		name     string
		register func(*domains.Registry) error
		want     string
	}{
		{"empty routing key", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{Example: orderPlaced{OrderID: "o"}})
		}, "routing key is empty"},
		{"empty word", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop..placed", Example: orderPlaced{OrderID: "o"}})
		}, "empty word"},
		{"wildcard", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.*", Example: orderPlaced{OrderID: "o"}})
		}, "may not contain"},
		{"placeholder names no field", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.{status}", Example: orderPlaced{OrderID: "o"}})
		}, "placeholder {status} must name a required string field"},
		{"placeholder names an optional field", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[withOptionalKey]{RoutingKey: "shop.{kind}", Example: withOptionalKey{Kind: new("x")}})
		}, "placeholder {kind} must name a required string field"},
		{"not a struct", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[map[string]any]{RoutingKey: "shop.map", Example: map[string]any{}})
		}, "must be a named struct"},
		{"bad domain", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.placed", Domain: "shop//order", Example: orderPlaced{OrderID: "o"}})
		}, "domain"},
		{"unknown kind", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.placed", Kind: "query", Example: orderPlaced{OrderID: "o"}})
		}, "kind"},
		{"result on a fact", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.placed", Result: "shop.done", Example: orderPlaced{OrderID: "o"}})
		}, "only a command has a result"},
		{"example outside the enumeration", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderEvent]{RoutingKey: "shop.event", Example: orderEvent{Status: "lost"}})
		}, `payload.status: expected one of "created", "cancelled", got "lost"`},
		{"default of the wrong type", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[withBadDefault]{RoutingKey: "shop.bad", Example: withBadDefault{N: 1}})
		}, `default "many"`},
		{"unsupported schema keyword", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[withMinLength]{RoutingKey: "shop.named", Example: withMinLength{Name: "n"}})
		}, "minLength"},
		{"type JSON cannot carry", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[withChan]{RoutingKey: "shop.chan", Example: withChan{C: make(chan int)}})
		}, "chan"},
		{"no example", func(r *domains.Registry) error {
			return domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.placed"})
		}, "Example is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.register(domains.NewRegistry())
			if !errors.Is(err, domains.ErrInvalidSpec) {
				t.Fatalf("Register = %v, want ErrInvalidSpec", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Register = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestRegistry_Lookup(t *testing.T) {
	r := shopRegistry(t)
	tests := []struct {
		name string
		want string // Go name
	}{
		{"shop.cart.emptied", "domains_test.cartEmptied"},
		{"domains_test.cartEmptied", "domains_test.cartEmptied"},
		{"OrderEventPayload", "domains_test.orderEvent"},
		{"shop.order.{status}", "domains_test.orderEvent"},
		{"shop.order.cancelled", "domains_test.orderEvent"},
		{"geo.moon.changed", "domains_test.regionEvent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := r.Lookup(tt.name)
			if err != nil {
				t.Fatalf("Lookup(%q) = %v", tt.name, err)
			}
			if e.Name() != tt.want {
				t.Errorf("Lookup(%q) = %s, want %s", tt.name, e.Name(), tt.want)
			}
		})
	}
}

func TestRegistry_Lookup_unknownNames(t *testing.T) {
	r := shopRegistry(t)
	for _, name := range []string{"shop.order.lost", "shop.cart", "shop.cart.emptied.now", "geo..changed", "nothing"} {
		_, err := r.Lookup(name)
		if !errors.Is(err, domains.ErrUnknownEventType) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownEventType", name, err)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("Lookup(%q) = %q, want the name in the message", name, err)
		}
	}
}

func TestRegistry_LookupKey_acceptsOnlyRoutingKeys(t *testing.T) {
	r := shopRegistry(t)
	for _, name := range []string{"domains_test.cartEmptied", "OrderEventPayload", "shop.order.{status}"} {
		if _, err := r.LookupKey(name); !errors.Is(err, domains.ErrUnknownEventType) {
			t.Errorf("LookupKey(%q) = %v, want ErrUnknownEventType", name, err)
		}
	}
	if e, err := r.LookupKey("shop.order.created"); err != nil || e.RoutingKey() != "shop.order.{status}" {
		t.Errorf("LookupKey(shop.order.created) = %v, %v; want the shop.order.{status} type", e, err)
	}
}

func TestRegistry_RoutingKeyFor_fillsTemplates(t *testing.T) {
	r := shopRegistry(t)
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"value", orderEvent{Status: "cancelled", OrderID: "o"}, "shop.order.cancelled"},
		{"pointer", &orderEvent{Status: "created", OrderID: "o"}, "shop.order.created"},
		{"exact key", cartEmptied{CartID: "c"}, "shop.cart.emptied"},
		{"free placeholder", regionEvent{Region: "us-east"}, "geo.us-east.changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.RoutingKeyFor(tt.value)
			if err != nil || got != tt.want {
				t.Errorf("RoutingKeyFor = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRegistry_RoutingKeyFor_unusableFieldFails(t *testing.T) {
	r := shopRegistry(t)
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"outside the enumeration", orderEvent{Status: "lost"}, `payload.status: expected one of "created", "cancelled", got "lost"`},
		{"empty", orderEvent{}, `payload.status: expected one of`},
		{"dot in a free word", regionEvent{Region: "eu.west"}, `payload.region: "eu.west" cannot be a routing-key word`},
		{"unregistered type", orderPlaced{}, "unknown event type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.RoutingKeyFor(tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RoutingKeyFor = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestEventType_ResolveRoutingKey(t *testing.T) {
	r := shopRegistry(t)
	e, _ := r.Lookup("OrderEventPayload")
	tests := []struct {
		payload string
		want    string // key, or the problem
	}{
		{`{"status": "created", "order_id": "o"}`, "shop.order.created"},
		{`{"order_id": "o"}`, "payload.status: required to fill routing key shop.order.{status}"},
		{`{"status": null}`, "payload.status: required to fill routing key shop.order.{status}"},
		{`{"status": 3}`, "payload.status: expected string to fill routing key shop.order.{status}"},
		{`[1]`, "payload: expected a JSON object to fill routing key shop.order.{status}"},
	}
	for _, tt := range tests {
		got, err := e.ResolveRoutingKey([]byte(tt.payload))
		if err != nil {
			var verr *domains.ValidationError
			if !errors.As(err, &verr) || verr.Error() != tt.want {
				t.Errorf("ResolveRoutingKey(%s) = %v, want %q", tt.payload, err, tt.want)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("ResolveRoutingKey(%s) = %q, want %q", tt.payload, got, tt.want)
		}
	}
}

func TestEventType_RoutingKeys(t *testing.T) {
	r := shopRegistry(t)
	tests := []struct {
		name string
		want []string
	}{
		{"shop.cart.emptied", []string{"shop.cart.emptied"}},
		{"shop.order.{status}", []string{"shop.order.created", "shop.order.cancelled"}},
		{"geo.{region}.changed", nil}, // a free placeholder has no finite list
	}
	for _, tt := range tests {
		e, _ := r.Lookup(tt.name)
		if got := e.RoutingKeys(); !slices.Equal(got, tt.want) {
			t.Errorf("RoutingKeys(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRegistry_Validate_templateKeyMustMatchPayload(t *testing.T) {
	r := shopRegistry(t)
	err := r.Validate("shop.order.created", []byte(`{"status": "cancelled", "order_id": "o"}`))
	want := `payload.status: "cancelled" does not match routing key "shop.order.created"`
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
	if err := r.Validate("shop.order.cancelled", []byte(`{"status": "cancelled", "order_id": "o"}`)); err != nil {
		t.Errorf("Validate = %v, want nil", err)
	}
}

func TestRegistry_Validate_unknownEventType(t *testing.T) {
	r := shopRegistry(t)
	err := r.Validate("shop.unknown.thing", []byte(`{}`))
	if !errors.Is(err, domains.ErrUnknownEventType) {
		t.Fatalf("Validate = %v, want ErrUnknownEventType", err)
	}
	if errors.Is(err, domains.ErrInvalidPayload) {
		t.Errorf("Validate = %v: an unknown type must not read as an invalid payload", err)
	}
	if !strings.Contains(err.Error(), `"shop.unknown.thing"`) {
		t.Errorf("Validate = %q, want the routing key in the message", err)
	}
}

func TestRegistry_EventsAndDomains(t *testing.T) {
	r := shopRegistry(t)
	keys := func(f domains.Filter) []string {
		var out []string
		for _, e := range r.Events(f) {
			out = append(out, e.RoutingKey())
		}
		return out
	}
	tests := []struct {
		name   string
		filter domains.Filter
		want   []string
	}{
		{"all, sorted", domains.Filter{}, []string{"geo.{region}.changed", "shop.cart.emptied", "shop.order.place", "shop.order.{status}"}},
		{"parent domain", domains.Filter{Domain: "shop"}, []string{"shop.cart.emptied", "shop.order.place", "shop.order.{status}"}},
		{"nested domain", domains.Filter{Domain: "shop/order"}, []string{"shop.order.place", "shop.order.{status}"}},
		{"nested domain, dotted", domains.Filter{Domain: "shop.order"}, []string{"shop.order.place", "shop.order.{status}"}},
		{"prefix is not a domain", domains.Filter{Domain: "sho"}, nil},
		{"commands", domains.Filter{Kind: domains.Command}, []string{"shop.order.place"}},
		{"facts of a domain", domains.Filter{Domain: "shop/order", Kind: domains.Fact}, []string{"shop.order.{status}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keys(tt.filter); !slices.Equal(got, tt.want) {
				t.Errorf("Events(%+v) = %q, want %q", tt.filter, got, tt.want)
			}
		})
	}
	if got, want := r.Domains(), []string{"geo", "shop/cart", "shop/order"}; !slices.Equal(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}
	e, _ := r.Lookup("shop.order.place")
	if e.Kind() != domains.Command || e.Result() != "shop.order.created" {
		t.Errorf("shop.order.place: kind %q result %q, want command with result shop.order.created", e.Kind(), e.Result())
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		in      string
		want    domains.Kind
		wantErr bool
	}{
		{"event", domains.Fact, false},
		{"fact", domains.Fact, false},
		{"Command", domains.Command, false},
		{"query", "", true},
	}
	for _, tt := range tests {
		got, err := domains.ParseKind(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseKind(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDecode(t *testing.T) {
	got, err := domains.Decode[orderEvent]([]byte(` {"status": "created", "order_id": "o-9", "note": null, "extra": 1}`))
	if err != nil || got.OrderID != "o-9" || got.Status != "created" || got.Note != nil {
		t.Errorf("Decode = %+v, %v", got, err)
	}
	for _, payload := range []string{`null`, `[]`, `"x"`, ``} {
		if _, err := domains.Decode[orderEvent]([]byte(payload)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("Decode(%q) = %v, want a not-an-object error", payload, err)
		}
	}
	if _, err := domains.Decode[orderEvent]([]byte(`{"order_id": 5}`)); err == nil || !strings.Contains(err.Error(), "cannot decode domains_test.orderEvent") {
		t.Errorf("Decode(wrong type) = %v, want a cannot-decode error", err)
	}
}

func TestEventType_Decode_returnsTheGoType(t *testing.T) {
	r := shopRegistry(t)
	e, _ := r.Lookup("shop.cart.emptied")
	v, err := e.Decode(e.Example())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := v.(cartEmptied); !ok || got.CartID != "c-1" {
		t.Errorf("Decode(example) = %#v, want cartEmptied{CartID: c-1}", v)
	}
}

func TestRegistry_concurrentRegisterAndValidate(t *testing.T) {
	r := shopRegistry(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_ = r.Validate("shop.cart.emptied", []byte(`{"cart_id": "c"}`))
				_ = r.Events(domains.Filter{})
			}
		})
	}
	wg.Go(func() {
		_ = domains.Register(r, domains.Spec[orderPlaced]{RoutingKey: "shop.order.paid", Example: orderPlaced{OrderID: "o"}})
	})
	wg.Wait()
	if _, err := r.Lookup("shop.order.paid"); err != nil {
		t.Errorf("Lookup after concurrent Register = %v", err)
	}
}
