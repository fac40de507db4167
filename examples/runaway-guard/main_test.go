package main

import (
	"context"
	"log/slog"
	"os"
)

// The demo, as `go run ./examples/runaway-guard` prints it: the two agents
// answer each other until the guard stops the chain by the repeats rule.
func Example() {
	if err := run(context.Background(), slog.New(slog.DiscardHandler), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// depth  0  agent-a answers agent.thread.prompt
	// depth  1  agent-b answers agent.thread.response
	// depth  2  agent-a answers agent.thread.prompt
	// depth  3  agent-b answers agent.thread.response
	// depth  4  agent-a answers agent.thread.prompt
	// depth  5  agent-b answers agent.thread.response
	// depth  6  agent-a answers agent.thread.prompt
	// depth  7  agent-b answers agent.thread.response
	// depth  8  agent-a answers agent.thread.prompt
	// depth  9  agent-b answers agent.thread.response
	// depth 10  agent-a answers agent.thread.prompt
	// depth 11  agent-b answers agent.thread.response
	// depth 12  agent-a answers agent.thread.prompt
	// depth 13  agent-b answers agent.thread.response
	// depth 14  agent-a answers agent.thread.prompt
	// depth 15  agent-b answers agent.thread.response
	// depth 16  agent-a answers agent.thread.prompt
	// depth 17  agent-b answers agent.thread.response
	// parked agent.thread.prompt at depth 18 (root is the first prompt: true)
	//   kind runaway: permanent runaway failure: runaway chain (rule repeats): "agent.thread.response|agent-a" occurs 9 times among the ancestors of event <event>, above BB_MAX_REPEATS=8, root <root>
	// guard {ParkedDepth:0 ParkedRepeats:1 ParkedDescendants:0 Lookups:0 RedisErrors:0}
}
