//go:build race

package main_test

// raceEnabled builds the binary under test with -race when the tests run
// with -race, so that the processor's own goroutines are checked too.
const raceEnabled = true
