package correlation

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
)

func TestValidate_sameAsLinkValidate(t *testing.T) {
	p := []uuid.UUID{uuid.New()}
	for _, l := range []Link{
		{Child: uuid.New(), Parents: p},
		{Child: uuid.New(), Parents: p, Metadata: map[string]any{"s": "bad \xff", "i": 1, "j": int64(2), "b": true, "n": nil}},
		{Child: uuid.New(), Parents: p, Metadata: map[string]any{"c": make(chan int)}},
		{Child: uuid.New(), Parents: p, Metadata: map[string]any{"f": 1.5}},
		{Parents: p, Metadata: map[string]any{"s": "x"}},
		{Child: uuid.New(), Metadata: map[string]any{"s": "x"}},
		{Child: uuid.New(), Parents: []uuid.UUID{uuid.Nil}},
	} {
		if got, want := fmt.Sprint(validate(l)), fmt.Sprint(l.Validate()); got != want {
			t.Errorf("validate(%v) = %s, want %s", l, got, want)
		}
	}
}
