package topic_test

import (
	"testing"

	"github.com/33god/bloodbank-go/bus/topic"
)

func TestMatchTopic_table(t *testing.T) {
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"fireflies.transcript.ready", "fireflies.transcript.ready", true},
		{"fireflies.transcript.ready", "fireflies.transcript.upload", false},
		{"fireflies.transcript.*", "fireflies.transcript.ready", true},
		{"fireflies.transcript.*", "fireflies.transcript", false},
		{"fireflies.transcript.*", "fireflies.transcript.ready.extra", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*", "", false},
		{"#", "", true},
		{"#", "a", true},
		{"#", "a.b.c", true},
		{"agent.#", "agent", true},
		{"agent.#", "agent.thread.prompt", true},
		{"agent.#", "agents.thread", false},
		{"#.prompt", "agent.thread.prompt", true},
		{"#.prompt", "prompt", true},
		{"#.prompt", "agent.thread.response", false},
		{"a.#.b", "a.b", true},
		{"a.#.b", "a.x.b", true},
		{"a.#.b", "a.x.y.b", true},
		{"a.#.b", "a.x.y.c", false},
		{"a.#.b", "a.b.b", true},
		{"a.*.#", "a", false},
		{"a.*.#", "a.b", true},
		{"a.*.#", "a.b.c.d", true},
		{"#.#", "", true},
		{"#.#", "a.b", true},
		{"#.a.#", "x.a.y", true},
		{"#.a.#", "x.b.y", false},
		{"#.*", "", false},
		{"#.*", "a", true},
		{"*.#.*", "a", false},
		{"*.#.*", "a.b", true},
		// Empty words are words.
		{"a..b", "a..b", true},
		{"a.*.b", "a..b", true},
		{"*", ".", false},
		{"*.*", ".", true},
		{"#", ".", true},
		{"a.#", "a.", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		// A star is a word only when it stands alone.
		{"a*", "ab", false},
		{"a*", "a*", true},
		{"#a", "ba", false},
	}
	for _, tt := range tests {
		if got := topic.Match(tt.pattern, tt.key); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
		p, err := topic.Compile(tt.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.pattern, err)
		}
		if got := p.Match(tt.key); got != tt.want {
			t.Errorf("Pattern(%q).Match(%q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

func TestCompilePattern_tooLong(t *testing.T) {
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := topic.Compile(string(long)); err == nil {
		t.Fatal("Compile accepted a 256-byte pattern")
	}
}

func BenchmarkPattern_Match(b *testing.B) {
	cases := map[string]string{
		"exact":    "fireflies.transcript.ready",
		"star":     "fireflies.transcript.*",
		"hash":     "agent.#",
		"all":      "#",
		"hash_mid": "a.#.ready",
	}
	for name, pat := range cases {
		p := topic.Must(pat)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match("fireflies.transcript.ready")
			}
		})
	}
}
