package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/cmd/internal/console"
	"github.com/33god/bloodbank-go/correlation"
)

func chain(t *testing.T, n int) (correlation.Store, []uuid.UUID) {
	t.Helper()
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
		if i > 0 {
			if err := store.Record(context.Background(), correlation.Link{Child: ids[i], Parents: []uuid.UUID{ids[i-1]},
				Metadata: map[string]any{"event_type": "step", "source_app": "test"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return store, ids
}

func TestBuildGraph_levelsAndEdgesOfAChain(t *testing.T) {
	store, ids := chain(t, 5)
	g, err := console.BuildGraph(context.Background(), store, ids[2], 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 5 || len(g.Edges) != 4 || g.Truncated {
		t.Fatalf("got %d nodes, %d edges, truncated %t; want 5, 4, false", len(g.Nodes), len(g.Edges), g.Truncated)
	}
	for _, n := range g.Nodes {
		want := map[string]int{ids[0].String(): -2, ids[1].String(): -1, ids[2].String(): 0, ids[3].String(): 1, ids[4].String(): 2}[n.ID]
		if n.Level != want {
			t.Errorf("node %s at level %d, want %d", n.ID, n.Level, want)
		}
		if n.ID == ids[0].String() && n.Linked {
			t.Errorf("the root has no link but reads as linked")
		}
		if n.ID == ids[3].String() && (n.EventType != "step" || n.SourceApp != "test" || n.Time == "") {
			t.Errorf("node %s lacks its link's fields: %+v", n.ID, n)
		}
	}
}

func TestBuildGraph_cutOffBeyondTheLimit(t *testing.T) {
	store, ids := chain(t, 6)
	g, err := console.BuildGraph(context.Background(), store, ids[0], 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 3 || !g.Truncated || !g.Nodes[2].More {
		t.Fatalf("got %d nodes, truncated %t, last %+v; want 3, true, more", len(g.Nodes), g.Truncated, g.Nodes[len(g.Nodes)-1])
	}
}

func TestConsole_mutationsRefusedWhenReadOnly(t *testing.T) {
	c := console.New(console.Config{}, console.Deps{})
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ui/api/dlq/purge", strings.NewReader(`{"all":true}`)))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "HTTP_TOKEN") {
		t.Fatalf("purge on a read-only console: %d %s, want 403 naming HTTP_TOKEN", rec.Code, rec.Body)
	}
}

func TestConsole_unknownEventIsA404(t *testing.T) {
	store, _ := chain(t, 1)
	c := console.New(console.Config{}, console.Deps{Graph: store})
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/api/graph/"+uuid.NewString(), nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("graph of an unknown id: %d %s, want 404", rec.Code, rec.Body)
	}
}
