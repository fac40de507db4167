package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/cmd/internal/schemacompat"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// snapshotPath is where the repository keeps the snapshot the tests check
// the catalogue against.
const snapshotPath = "domains/catalog/testdata/schemas.snapshot.json"

func (a *app) schemaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Snapshot the catalogue's JSON Schemas, or check them against a snapshot for breaking changes",
		Long: `Work with the JSON Schemas of the event catalogue as a whole.

bb schema snapshot prints every registered type's schema; bb schema check
compares the catalogue with such a snapshot and fails on any change that would
break a consumer (BACKWARD compatibility, as Confluent's schema registry
defines it: a consumer built on the new schemas reads every message that was
valid under the old ones). The repository keeps a snapshot at
` + snapshotPath + ` and its tests run the check, so a
breaking change fails CI until the snapshot is deliberately regenerated.`,
		Example: `  bb schema snapshot > ` + snapshotPath + `
  bb schema check --against ` + snapshotPath,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usageErrorf("missing subcommand: snapshot or check")
		},
	}
	cmd.AddCommand(a.schemaSnapshotCommand(), a.schemaCheckCommand())
	return cmd
}

func (a *app) schemaSnapshotCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot",
		Short: "Print every registered type's JSON Schema as one JSON object keyed by routing key",
		Long: `Print one JSON object on stdout: each registered routing key (a template
such as artifact.{action} stays a template) mapped to its payload's JSON
Schema, exactly as bb show prints it. Keys are sorted and the output is
indented, so the same catalogue always gives the same bytes and a kept
snapshot's diff shows only what changed. It needs no broker.`,
		Example: `  bb schema snapshot > ` + snapshotPath + `
  bb schema snapshot | jq 'keys'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			reg, err := catalog.New()
			if err != nil {
				return fmt.Errorf("cannot load the event catalogue: %w", err)
			}
			out, err := schemacompat.Take(reg).Encode()
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

func (a *app) schemaCheckCommand() *cobra.Command {
	var against string
	cmd := &cobra.Command{
		Use:   "check --against FILE",
		Short: "Fail if the catalogue's schemas break consumers of a snapshot's (BACKWARD compatibility)",
		Long: `Compare the catalogue's JSON Schemas with a snapshot bb schema snapshot wrote,
and list every breaking change: one that lets the new schemas reject a message
the old ones accepted.

Breaking: a routing key removed; a type changed (narrowing number to integer,
or a type gone from a union, included); an enum value removed; a field made
required, or a new required field without a default; a field made stricter
(nullable to non-nullable, additionalProperties true to false, a format,
pattern or bound added or tightened). Additive changes pass: a new type, a new
optional field, a wider enum, a field made optional or nullable, integer
widened to number.

Each breaking change is listed on stderr as
  ROUTING_KEY: JSON_PATH: what changed
and bb exits 1. With none, it prints one "compatible" line on stdout and
exits 0. After a deliberate
breaking change (every consumer updated), regenerate the snapshot with
bb schema snapshot.`,
		Example: `  bb schema check --against ` + snapshotPath + `
  git show main:` + snapshotPath + ` > /tmp/old.json && bb schema check --against /tmp/old.json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if against == "" {
				return usageErrorf("--against is required: the snapshot file to check against (e.g. --against %s)", snapshotPath)
			}
			return a.schemaCheck(against)
		},
	}
	cmd.Flags().StringVar(&against, "against", "", "the snapshot to check against, as bb schema snapshot wrote it (required)")
	return cmd
}

func (a *app) schemaCheck(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return usageErrorf("--against %s: no such file", path)
	} else if err != nil {
		return usageErrorf("cannot read --against %s: %v", path, err)
	}
	old, err := schemacompat.Parse(data)
	if err != nil {
		return usageErrorf("--against %s: %v", path, err)
	}
	reg, err := catalog.New()
	if err != nil {
		return fmt.Errorf("cannot load the event catalogue: %w", err)
	}
	current := schemacompat.Take(reg)
	changes, err := schemacompat.Check(old, current)
	if err != nil {
		return usageErrorf("--against %s: %v", path, err)
	}
	if len(changes) == 0 {
		fmt.Fprintf(a.stdout, "compatible: no breaking changes against %s (%d types in the snapshot, %d in the catalogue)\n", path, len(old), len(current))
		return nil
	}
	noun := "changes"
	if len(changes) == 1 {
		noun = "change"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d breaking schema %s against %s:", len(changes), noun, path)
	for _, c := range changes {
		b.WriteString("\n" + c.String())
	}
	fmt.Fprintf(&b, "\nif every consumer is ready for this, regenerate the snapshot: bb schema snapshot > %s", path)
	return usageErrorf("%s", b.String())
}
