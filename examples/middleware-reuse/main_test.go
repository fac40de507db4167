package main

import (
	"context"
	"log/slog"
	"os"
)

// The demo, as `go run ./examples/middleware-reuse` prints it. Every id is
// derived from a transcript id and the retries wait exact intervals, so the
// output never varies.
func Example() {
	if err := run(context.Background(), slog.New(slog.DiscardHandler), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// 501ebf1d-169a-5416-ac66-47c59c980607: transcript tr-ok
	//   processed: 44a52cf9-0b1b-5b8b-97ac-2e424556b94b, correlation_ids [501ebf1d-169a-5416-ac66-47c59c980607], recorded parents [501ebf1d-169a-5416-ac66-47c59c980607]
	// 60768ecf-0b08-52a8-84d4-45c266159cfa: transcript tr-flaky
	//   retry: attempt 1 of 60768ecf-0b08-52a8-84d4-45c266159cfa failed (vector store timeout); next in 10ms
	//   processed: ea84bc0c-8556-5afc-bdd1-ff851fd2468b, correlation_ids [60768ecf-0b08-52a8-84d4-45c266159cfa], recorded parents [60768ecf-0b08-52a8-84d4-45c266159cfa]
	// 9a6f9698-b9e7-59b2-a5a0-f600c15f8edf: transcript tr-down
	//   retry: attempt 1 of 9a6f9698-b9e7-59b2-a5a0-f600c15f8edf failed (vector store timeout); next in 10ms
	//   retry: attempt 2 of 9a6f9698-b9e7-59b2-a5a0-f600c15f8edf failed (vector store timeout); next in 20ms
	//   parked in rag_ingest.poison: kind handler after 3 attempt(s): vector store timeout
	// 2bb8216d-1e68-58d1-903a-2953326136e7: transcript tr-bad
	//   parked in rag_ingest.poison: kind invalid after 1 attempt(s): permanent invalid failure: payload.sentences: expected array, got string
	// validation {Valid:6 Invalid:1 Malformed:0 Unknown:0}
	// retry {Retried:3 Redelivered:0 Exhausted:1 Panics:0}
	// poison {Parked:2 Failed:0}
}
