package main

import (
	"context"
	"fmt"
	"strings"
)

// runRollup: dmarcd rollup rebuild [--partition YYYYMM]... recomputes
// aggregate_rollup, aggregate_sources, aggregate_outcomes and aggregate_pair_buckets from aggregate_records
// (store.RebuildRollup), e.g. for reports stored before they existed.
func runRollup(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "rollup")
	var parts multiFlag
	fs.Var(&parts, "partition", "a monthly partition to rebuild, as YYYYMM (repeatable); default: all")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "rebuild" {
		fmt.Fprintln(e.stderr, "usage: dmarcd rollup rebuild [--partition YYYYMM]...")
		return exitUsage
	}
	s, _, code := openStore(ctx, e, false)
	if s == nil {
		return code
	}
	defer s.Close()
	if err := s.RebuildRollup(ctx, parts); err != nil {
		fmt.Fprintln(e.stderr, "dmarcd rollup rebuild:", err)
		return exitFail
	}
	what := "all partitions"
	if parts != nil {
		what = strings.Join(parts, " ")
	}
	fmt.Fprintln(e.stdout, "rollup rebuilt:", what)
	return exitOK
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
