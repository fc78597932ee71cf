package schema

import (
	"regexp"
	"strings"
	"testing"
)

func TestMigrationsRenderForSingleServerAndCluster(t *testing.T) {
	list, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Version != 1 || list[0].Name != "init" {
		t.Fatalf("migrations = %+v, want 0001_init first", list)
	}
	for _, cluster := range []string{"", "dmarc_cluster"} {
		target := Target{Database: "dmarc", Cluster: cluster}
		for _, m := range list {
			stmts, err := target.MigrationStatements(m)
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
				// ALTER ... ADD COLUMN cannot say IF NOT EXISTS on 18.16:
				// Migrate treats "column already exists" as applied.
				alter := addColumn.MatchString(q)
				// A cluster's Distributed table is dropped IF EXISTS before
				// it is created again.
				if !alter && !strings.Contains(q, "IF NOT EXISTS") && !strings.HasPrefix(q, "DROP TABLE IF EXISTS") {
					t.Errorf("%s: statement is not idempotent: %.60q", m.File, q)
				}
				onCluster := strings.Contains(q, "ON CLUSTER `dmarc_cluster`")
				replicated := strings.Contains(q, "ENGINE = Replicated") || alter
				distributed := strings.Contains(q, "ENGINE = Distributed") || strings.HasPrefix(q, "DROP TABLE IF EXISTS")
				if cluster == "" && (onCluster || strings.Contains(q, "ENGINE = Replicated")) || cluster != "" && (!onCluster || !replicated && !distributed) {
					t.Errorf("cluster %q: statement %.80q", cluster, q)
				}
			}
		}
	}
}

func TestEngineRendersReplicatedFormInClusterMode(t *testing.T) {
	d := Target{Database: "dmarc"}.templateData()
	if got, err := d.Engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); err != nil || got != "ReplacingMergeTree(ingested_at)" {
		t.Errorf("single server: %s, %v", got, err)
	}
	d = Target{Database: "dmarc", Cluster: "c"}.templateData()
	want := "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dmarc/aggregate_reports', '{replica}', ingested_at)"
	if got, err := d.Engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); err != nil || got != want {
		t.Errorf("cluster:\n got %s, %v\nwant %s", got, err, want)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment;\nCREATE TABLE a (x UInt8);\n\n-- b\nCREATE TABLE b\n(y String);\nSELECT 1")
	want := []string{"CREATE TABLE a (x UInt8)", "CREATE TABLE b\n(y String)", "SELECT 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestClusterTemplatesMakeLocalAndDistributedTables renders, for a cluster,
// the template functions that name a table: a CREATE of a sharded table
// becomes its Replicated _local table and its Distributed table, an ALTER
// of its columns alters the _local table and creates the Distributed table
// again, an ALTER of its partitions only alters the _local table, and a
// table not named through the functions keeps its name.
func TestClusterTemplatesMakeLocalAndDistributedTables(t *testing.T) {
	on := " ON CLUSTER `c`"
	text := `CREATE TABLE IF NOT EXISTS {{.Local "aggregate_records"}}{{.OnCluster}} (
    report_key String,
    x UInt8
) ENGINE = ReplicatedMergeTree('/p', '{replica}')
ORDER BY (report_key, x);
{{.Distributed "aggregate_records"}}
CREATE TABLE IF NOT EXISTS {{.Local "source_attribution"}}{{.OnCluster}} (
    ip String
) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}', checked_at)
ORDER BY ip;
{{.Distributed "source_attribution"}}
ALTER TABLE {{.Local "aggregate_records"}}{{.OnCluster}} ADD COLUMN y UInt8;
{{.Redistributed "aggregate_records"}}
ALTER TABLE {{.Local "aggregate_records"}}{{.OnCluster}} DROP PARTITION ID '202401';
ALTER TABLE other{{.OnCluster}} ADD COLUMN y UInt8;
CREATE TABLE IF NOT EXISTS mem{{.OnCluster}} (x UInt8) ENGINE = Memory;`
	got, err := Target{Database: "dmarc", Cluster: "c"}.render("test", text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_records_local`" + on + " (\n    report_key String,\n    x UInt8\n) ENGINE = ReplicatedMergeTree('/p', '{replica}')\nORDER BY (report_key, x)",
		"CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_records`" + on + " AS `dmarc`.`aggregate_records_local` ENGINE = Distributed(c, dmarc, aggregate_records_local, sipHash64(report_key))",
		"CREATE TABLE IF NOT EXISTS `dmarc`.`source_attribution_local`" + on + " (\n    ip String\n) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}', checked_at)\nORDER BY ip",
		"CREATE TABLE IF NOT EXISTS `dmarc`.`source_attribution`" + on + " AS `dmarc`.`source_attribution_local` ENGINE = Distributed(c, dmarc, source_attribution_local, sipHash64(ip))",
		"ALTER TABLE `dmarc`.`aggregate_records_local`" + on + " ADD COLUMN y UInt8",
		"DROP TABLE IF EXISTS `dmarc`.`aggregate_records`" + on,
		"CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_records`" + on + " AS `dmarc`.`aggregate_records_local` ENGINE = Distributed(c, dmarc, aggregate_records_local, sipHash64(report_key))",
		"ALTER TABLE `dmarc`.`aggregate_records_local`" + on + " DROP PARTITION ID '202401'",
		"ALTER TABLE other" + on + " ADD COLUMN y UInt8",
		"CREATE TABLE IF NOT EXISTS mem" + on + " (x UInt8) ENGINE = Memory",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d statements, want %d:\n%s", len(got), len(want), strings.Join(got, "\n---\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func TestATemplateNamingAnUnlistedTableFailsToRender(t *testing.T) {
	for _, text := range []string{`CREATE TABLE {{.Local "nope"}} (x UInt8);`, `{{.Distributed "nope"}}`} {
		if _, err := (Target{Database: "dmarc"}).render("test", text); err == nil {
			t.Errorf("%s rendered without an error", text)
		}
	}
}

var (
	createdRe = regexp.MustCompile("^CREATE TABLE IF NOT EXISTS (\\S+) ")
	alteredRe = regexp.MustCompile("^(?:ALTER|DROP) TABLE (?:IF EXISTS )?(\\S+) ")
)

// TestClusterMigrationsNameLocalTablesForReplicatedAndPlainForDistributed
// checks the invariant of the cluster rendering: every CREATE of a
// Replicated engine and every ALTER names a `db`.`t_local` table of
// Sharded; every Distributed table (and its DROP) has t's plain name, sits
// over t_local with t's sharding key, and follows the statement that made
// or changed t_local; every table of Sharded is created both ways; no
// statement names a table unqualified except schema_migrations.
func TestClusterMigrationsNameLocalTablesForReplicatedAndPlainForDistributed(t *testing.T) {
	stmts, err := Target{Database: "dmarc", Cluster: "c"}.Statements()
	if err != nil {
		t.Fatal(err)
	}
	local, dist := map[string]bool{}, map[string]bool{}
	last := ""
	for _, st := range stmts {
		q := st.SQL
		var name string
		if m := createdRe.FindStringSubmatch(q); m != nil {
			name = m[1]
		} else if m := alteredRe.FindStringSubmatch(q); m != nil {
			name = m[1]
		} else {
			t.Errorf("%s: unexpected statement %.60q", st.Migration, q)
			continue
		}
		if name == "schema_migrations" {
			continue
		}
		plain, ok := strings.CutPrefix(name, "`dmarc`.`")
		plain = strings.TrimSuffix(plain, "`")
		if !ok {
			t.Errorf("%s: table %s is not qualified with the database: %.60q", st.Migration, name, q)
			continue
		}
		switch {
		case strings.Contains(q, "ENGINE = Distributed"):
			tb, ok := sharded(plain)
			want := "AS `dmarc`.`" + plain + "_local` ENGINE = Distributed(c, dmarc, " + plain + "_local, " + tb.ShardingKey + ")"
			if !ok || !strings.Contains(q, want) {
				t.Errorf("%s: Distributed table %s: %.200q, want ... %s", st.Migration, plain, q, want)
			}
			if last != plain {
				t.Errorf("%s: Distributed table %s does not follow the DDL of %s_local", st.Migration, plain, plain)
			}
			dist[plain] = true
		case strings.HasPrefix(q, "DROP TABLE"):
			if last != plain {
				t.Errorf("%s: DROP of %s does not follow the ALTER of %s_local", st.Migration, plain, plain)
			}
		default:
			base, ok := strings.CutSuffix(plain, LocalSuffix)
			if _, listed := sharded(base); !ok || !listed {
				t.Errorf("%s: %s of a table that is not a _local table of Sharded: %.60q", st.Migration, name, q)
			}
			if strings.HasPrefix(q, "CREATE") && !strings.Contains(q, "ENGINE = Replicated") {
				t.Errorf("%s: %s is created without a Replicated engine", st.Migration, name)
			}
			if strings.HasPrefix(q, "CREATE") {
				local[base] = true
			}
			last = base
		}
	}
	for _, tb := range Sharded {
		if !local[tb.Name] || !dist[tb.Name] {
			t.Errorf("%s: created as _local %v, as Distributed %v; want both", tb.Name, local[tb.Name], dist[tb.Name])
		}
	}
}

func TestEveryMigratedTableIsLocalAndDistributedInClusterMode(t *testing.T) {
	for _, name := range []string{"aggregate_reports", "aggregate_records", "inputs", "failure_reports",
		"tlsrpt_reports", "tlsrpt_policies", "tlsrpt_failures", "source_attribution", "input_attempts"} {
		if tb, ok := sharded(name); !ok || tb.ShardingKey == "" {
			t.Errorf("%s is not a cluster table; have %v", name, Sharded)
		}
	}
	if _, ok := sharded("schema_migrations"); ok {
		t.Error("schema_migrations must be one table replicated to every server, not sharded")
	}
}

func TestLocalNamesAreTheShardTablesOfShardedTablesOnly(t *testing.T) {
	for _, c := range []struct {
		names       Names
		table, want string
	}{
		{Plain, "aggregate_records", "aggregate_records"},
		{Local, "aggregate_records", "aggregate_records_local"},
		{Local, "schema_migrations", "schema_migrations"},
		{Local, "aggregate_records_staging_0123", "aggregate_records_staging_0123"},
	} {
		if got := c.names.Of(c.table); got != c.want {
			t.Errorf("%v.Of(%s) = %s, want %s", c.names, c.table, got, c.want)
		}
	}
}
