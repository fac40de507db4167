package bus_test

import (
	"errors"
	"slices"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
