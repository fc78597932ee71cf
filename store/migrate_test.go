package store

import (
	"strings"
	"testing"
)

func TestMigrationsRenderForSingleServerAndCluster(t *testing.T) {
	list, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Version != 1 || list[0].Name != "init" {
		t.Fatalf("migrations = %+v, want 0001_init first", list)
	}
	for _, cluster := range []string{"", "dmarc_cluster"} {
		s := &Store{database: "dmarc", cluster: cluster}
		for _, m := range list {
			text, err := migrationFiles.ReadFile(m.File)
			if err != nil {
				t.Fatal(err)
			}
			stmts, err := s.render(m.File, string(text))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range stmts {
				if strings.Contains(q, "--") || strings.HasSuffix(q, ";") {
					t.Errorf("statement keeps a comment or its ';': %q", q)
				}
				for _, banned := range []string{"LowCardinality", "Map(", "DateTime64", "TTL", "IPv4", "IPv6"} {
					if strings.Contains(q, banned) {
						t.Errorf("%s uses %s, which ClickHouse 18.16 lacks", m.File, banned)
					}
				}
				if !strings.Contains(q, "IF NOT EXISTS") {
					t.Errorf("%s: statement is not idempotent: %.60q", m.File, q)
				}
				onCluster := strings.Contains(q, "ON CLUSTER `dmarc_cluster`")
				replicated := strings.Contains(q, "ENGINE = Replicated")
				if cluster == "" && (onCluster || replicated) || cluster != "" && (!onCluster || !replicated) {
					t.Errorf("cluster %q: statement %.80q", cluster, q)
				}
			}
		}
	}
}

func TestEngineRendersReplicatedFormInClusterMode(t *testing.T) {
	s := &Store{database: "dmarc"}
	if got := s.engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); got != "ReplacingMergeTree(ingested_at)" {
		t.Errorf("single server: %s", got)
	}
	s.cluster = "c"
	want := "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dmarc/aggregate_reports', '{replica}', ingested_at)"
	if got := s.engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); got != want {
		t.Errorf("cluster:\n got %s\nwant %s", got, want)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment;\nCREATE TABLE a (x UInt8);\n\n-- b\nCREATE TABLE b\n(y String);\nSELECT 1")
	want := []string{"CREATE TABLE a (x UInt8)", "CREATE TABLE b\n(y String)", "SELECT 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
