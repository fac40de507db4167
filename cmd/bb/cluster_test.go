package main_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/internal/testcluster"
)

// bb trace given REDIS_URL in the cluster form reads a graph whose three
// links sit on three masters.
func TestTrace_onRedisCluster(t *testing.T) {
	rc := testcluster.RedisCluster(t)
	client := rc.Client(t)
	store, err := correlation.NewRedisStore(client, correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	spread := rc.SpreadIDs(t, store.ForwardKey)
	g := graph{grandparent: spread[0], parent: spread[1], child: spread[2]}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = store.Record(ctx,
		correlation.Link{Child: g.grandparent, Parents: []uuid.UUID{uuid.New()}},
		correlation.Link{Child: g.parent, Parents: []uuid.UUID{g.grandparent}, Metadata: map[string]any{"handler": "bbtest"}},
		correlation.Link{Child: g.child, Parents: []uuid.UUID{g.parent}},
	)
	if err != nil {
		t.Fatal(err)
	}
	env := run{env: []string{"REDIS_URL=" + rc.URL}}

	res := mustSucceed(t, env, "trace", "--json", g.parent.String())
	var d dump
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, res)
	}
	if !slices.Equal(d.Parents, []uuid.UUID{g.grandparent}) || !slices.Equal(d.Children, []uuid.UUID{g.child}) ||
		len(d.Ancestors) != 2 || d.Ancestors[0] != g.grandparent || !slices.Equal(d.Descendants, []uuid.UUID{g.child}) ||
		d.Metadata["handler"] != "bbtest" {
		t.Errorf("dump = %+v, want the parent between %s and %s", d, g.grandparent, g.child)
	}
	res = mustSucceed(t, env, "trace", "--chain", "ancestors", g.child.String())
	if got := lines(res.stdout); len(got) != 4 || !slices.Equal(got[1:], []string{g.grandparent.String(), g.parent.String(), g.child.String()}) {
		t.Errorf("--chain ancestors = %v, want the root, then grandparent, parent, child", got)
	}
	res = mustSucceed(t, env, "trace", "--chain", "descendants", g.grandparent.String())
	if got, want := lines(res.stdout), []string{g.child.String(), g.parent.String(), g.grandparent.String()}; !slices.Equal(got, want) {
		t.Errorf("--chain descendants = %v, want %v", got, want)
	}
}
