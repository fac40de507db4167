package main_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testenv"
)

// graph records grandparent → parent → child in the real Redis, under
// fresh random ids in database 0, and deletes its keys when the test ends.
type graph struct {
	grandparent, parent, child uuid.UUID
	env                        []string
}

func recordGraph(t *testing.T) graph {
	t.Helper()
	addr := testenv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := graph{grandparent: uuid.New(), parent: uuid.New(), child: uuid.New()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() {
		var keys []string
		for _, id := range []uuid.UUID{g.grandparent, g.parent, g.child} {
			keys = append(keys, store.ForwardKey(id), store.ReverseKey(id))
		}
		if err := client.Del(context.Background(), keys...).Err(); err != nil {
			t.Errorf("cannot delete the test's keys: %v", err)
		}
	})
	err = store.Record(ctx,
		correlation.Link{Child: g.parent, Parents: []uuid.UUID{g.grandparent}, Metadata: map[string]any{"handler": "bbtest", "attempt": 2}},
		correlation.Link{Child: g.child, Parents: []uuid.UUID{g.parent}},
	)
	if err != nil {
		t.Fatalf("cannot record the links: %v", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	g.env = []string{"REDIS_HOST=" + host, "REDIS_PORT=" + port, "REDIS_DB=0"}
	return g
}

type dump struct {
	EventID     uuid.UUID      `json:"event_id"`
	Parents     []uuid.UUID    `json:"parents"`
	Children    []uuid.UUID    `json:"children"`
	Ancestors   []uuid.UUID    `json:"ancestors"`
	Descendants []uuid.UUID    `json:"descendants"`
	Metadata    map[string]any `json:"metadata"`
}

func TestTrace_jsonIsTheDebugDump(t *testing.T) {
	g := recordGraph(t)
	res := mustSucceed(t, run{env: g.env}, "trace", "--json", g.parent.String())
	var d dump
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, res)
	}
	if d.EventID != g.parent ||
		!slices.Equal(d.Parents, []uuid.UUID{g.grandparent}) || !slices.Equal(d.Children, []uuid.UUID{g.child}) ||
		!slices.Equal(d.Ancestors, []uuid.UUID{g.grandparent}) || !slices.Equal(d.Descendants, []uuid.UUID{g.child}) {
		t.Errorf("dump = %+v, want parent %s between %s and %s", d, g.parent, g.grandparent, g.child)
	}
	if d.Metadata["handler"] != "bbtest" || d.Metadata["attempt"] != float64(2) {
		t.Errorf("metadata = %v", d.Metadata)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal([]byte(res.stdout), &keys)
	for _, k := range []string{"event_id", "parents", "children", "ancestors", "descendants", "metadata"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("the dump lacks %q\n%s", k, res)
		}
	}

	// --depth bounds the walk: one level up from the child is its parent only.
	res = mustSucceed(t, run{env: g.env}, "trace", "--json", "--depth", "1", g.child.String())
	d = dump{}
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Ancestors, []uuid.UUID{g.parent}) {
		t.Errorf("--depth 1: ancestors = %v, want [%s]", d.Ancestors, g.parent)
	}
	res = mustSucceed(t, run{env: g.env}, "trace", "--json", g.child.String())
	d = dump{}
	_ = json.Unmarshal([]byte(res.stdout), &d)
	if !slices.Equal(d.Ancestors, []uuid.UUID{g.parent, g.grandparent}) || len(d.Children) != 0 {
		t.Errorf("child: ancestors = %v (want parent then grandparent), children = %v", d.Ancestors, d.Children)
	}
}

// --chain prints the Python tracker's get_correlation_chain: depth first,
// post-order, the event itself last.
func TestTrace_chainInPythonOrder(t *testing.T) {
	g := recordGraph(t)
	res := mustSucceed(t, run{env: g.env}, "trace", "--chain", "ancestors", g.child.String())
	if got, want := lines(res.stdout), []string{g.grandparent.String(), g.parent.String(), g.child.String()}; !slices.Equal(got, want) {
		t.Errorf("--chain ancestors = %v, want %v", got, want)
	}
	res = mustSucceed(t, run{env: g.env}, "trace", "--chain", "descendants", "--json", g.grandparent.String())
	var ids []uuid.UUID
	if err := json.Unmarshal([]byte(res.stdout), &ids); err != nil {
		t.Fatalf("stdout is not a JSON array: %v\n%s", err, res)
	}
	if want := []uuid.UUID{g.child, g.parent, g.grandparent}; !slices.Equal(ids, want) {
		t.Errorf("--chain descendants --json = %v, want %v", ids, want)
	}
	res = mustSucceed(t, run{env: g.env}, "trace", "--chain", "ancestors", "--depth", "1", g.child.String())
	if got, want := lines(res.stdout), []string{g.parent.String(), g.child.String()}; !slices.Equal(got, want) {
		t.Errorf("--chain ancestors --depth 1 = %v, want %v", got, want)
	}
	bad := bb(t, run{env: g.env}, "trace", "--chain", "up", g.child.String())
	if bad.code != 1 || !strings.Contains(bad.stderr, `--chain: invalid direction "up": want ancestors or descendants`) {
		t.Errorf("--chain up: want exit 1 naming the directions\n%s", bad)
	}
}

func TestTrace_treeShowsTheNeighbourhood(t *testing.T) {
	g := recordGraph(t)
	res := mustSucceed(t, run{env: g.env}, "trace", g.parent.String())
	out := res.stdout
	for _, want := range []string{
		"event " + g.parent.String(),
		`metadata  {"attempt":2,"handler":"bbtest"}`,
		"recorded  ",
		"parents (caused it): 1",
		"children (it caused): 1",
		"ancestors, nearest first, up to 100 links: 1",
		"descendants, nearest first, up to 100 links: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q\n%s", want, res)
		}
	}
	// Each id appears under its section: the grandparent as parent and
	// ancestor, the child as child and descendant.
	if strings.Count(out, g.grandparent.String()) != 2 || strings.Count(out, g.child.String()) != 2 {
		t.Errorf("want the grandparent and the child twice each\n%s", res)
	}
	if i, j := strings.Index(out, "parents"), strings.Index(out, "descendants"); i < 0 || j < i {
		t.Errorf("sections out of order\n%s", res)
	}

	// An event nobody linked is not an error.
	res = mustSucceed(t, run{env: g.env}, "trace", uuid.NewString())
	if !strings.Contains(res.stdout, "no correlation recorded") {
		t.Errorf("an unknown event: want a note that nothing is recorded\n%s", res)
	}
}

// Redis that is not there: exit 2 within the --timeout, without the password.
func TestTrace_unreachableRedisExits2WithinTimeout(t *testing.T) {
	const password = "Sup3rSecretPw"
	for _, env := range [][]string{
		{"REDIS_HOST=127.0.0.1", "REDIS_PORT=1", "REDIS_PASSWORD=" + password},
		{"REDIS_URL=redis://bb:" + password + "@127.0.0.1:1/0"},
	} {
		res := bb(t, run{env: env}, "trace", "--timeout", "2s", uuid.NewString())
		if res.code != 2 {
			t.Fatalf("want exit 2\n%s", res)
		}
		if res.elapsed > 5*time.Second {
			t.Errorf("gave up after %s, want at most about 2s", res.elapsed)
		}
		if !strings.Contains(res.stderr, "127.0.0.1:1") || !strings.Contains(res.stderr, "check that Redis is running") {
			t.Errorf("the message does not say which Redis and what to check\n%s", res)
		}
		if strings.Contains(res.stderr+res.stdout, password) {
			t.Errorf("the password leaked\n%s", res)
		}
	}
}

func TestTrace_costTotalsPerRootAndAgent(t *testing.T) {
	g := recordGraph(t)
	client := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = client.Close() })
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	t.Cleanup(func() {
		client.Del(context.Background(), store.CostKey(g.grandparent), store.ForwardKey(a), store.ForwardKey(b), store.ReverseKey(g.child))
	})
	// Two agents answer under the child; their cost is charged to the grandparent, the root.
	err = store.Record(t.Context(),
		correlation.Link{Child: a, Parents: []uuid.UUID{g.child}, Cost: &correlation.Cost{Agent: "planner", TokensUsed: 1000, DurationMS: 2500}},
		correlation.Link{Child: b, Parents: []uuid.UUID{g.child}, Cost: &correlation.Cost{Agent: "coder", TokensUsed: 3000, DurationMS: 500}})
	if err != nil {
		t.Fatal(err)
	}
	res := mustSucceed(t, run{env: g.env}, "trace", "--cost", a.String())
	want := []string{
		"root " + g.grandparent.String() + " (of event " + a.String() + ")",
		"total  tokens 4000  duration 3s  events 2",
		"agent (source.app)  tokens  duration  events",
		"coder               3000    500ms     1",
		"planner             1000    2.5s      1",
	}
	if got := lines(res.stdout); !slices.Equal(got, want) {
		t.Errorf("trace --cost printed\n%s\nwant\n%s", res.stdout, strings.Join(want, "\n"))
	}
	res = mustSucceed(t, run{env: g.env}, "trace", "--cost", "--json", g.grandparent.String())
	var totals correlation.CostTotals
	if err := json.Unmarshal([]byte(res.stdout), &totals); err != nil {
		t.Fatalf("--cost --json is not the totals: %v\n%s", err, res)
	}
	if totals.Root != g.grandparent || totals.TokensUsed != 4000 || totals.ByAgent["coder"].DurationMS != 500 {
		t.Errorf("--cost --json = %+v", totals)
	}
	if bad := bb(t, run{env: g.env}, "trace", "--cost", "--chain", "ancestors", a.String()); bad.code != 1 {
		t.Errorf("--cost with --chain: want exit 1\n%s", bad)
	}
}
