package main

import (
	"strings"
	"testing"
)

func TestCheckStopped(t *testing.T) {
	const before = `{"time":"2026-12-02T03:50:00Z","level":"INFO","msg":"command-processor starting","queue":"x.bbbench_1"}
{"time":"2026-12-02T03:50:01Z","level":"INFO","msg":"command","outcome":"executed"}
not json: a panic trace would look like this
`
	stopped := func(executed, failed, parked string) string {
		return before + `{"time":"2026-12-02T03:50:02Z","level":"INFO","msg":"command-processor stopped","executed":` + executed +
			`,"failed":` + failed + `,"parked":` + parked + `,"links_recorded":3}` + "\n"
	}
	tests := []struct {
		name, log string
		wantErr   string
	}{
		{"drained", stopped("3", "0", "0"), ""},
		{"fewer executed", stopped("2", "0", "0"), "executed 2 commands, want 3"},
		{"a failure", stopped("3", "1", "0"), "1 commands failed"},
		{"a parked command", stopped("3", "0", "1"), "0 commands failed, 1 parked"},
		{"killed before its last line", before, "no \"command-processor stopped\" line"},
		{"empty", "", "no \"command-processor stopped\" line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStopped([]byte(tc.log), 3)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkStopped: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkStopped: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}
