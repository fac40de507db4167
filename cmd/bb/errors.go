package main

import (
	"errors"
	"fmt"
)

// Exit codes, documented in the root command's help. Scripts depend on
// them: keep their meaning.
const (
	exitOK    = 0
	exitUsage = 1 // bad usage or invalid input: fix the command line or the data
	exitInfra = 2 // broker or Redis unreachable, publish not confirmed: fix or wait for the infrastructure
)

// exitError carries the exit code an error ends the program with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is an error the user fixes by changing the command line or
// its input: exit 1.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// infraErrorf is an error the user fixes by fixing (or waiting for) the
// broker or Redis: exit 2.
func infraErrorf(format string, args ...any) error {
	return &exitError{code: exitInfra, err: fmt.Errorf(format, args...)}
}

// exitCode is the exit code of err: its exitError's, or 1 for anything
// unclassified (cobra's own errors are all about usage).
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee.code
	}
	return exitUsage
}
