// Package schema is dmarcd's ClickHouse schema: the versioned migrations
// (migrations/NNNN_name.sql, embedded), their rendering for a single server
// and for a cluster from the same templates, the runner that applies them
// (Migrate), and the names by which a connection addresses the tables
// (Names).
//
// In cluster mode (docs/cluster.md) each table of Sharded is a pair:
// <name>_local, a Replicated*MergeTree table on every server (ZooKeeper path
// /clickhouse/tables/{shard}/<database>/<name>, replica '{replica}'), and
// <name> itself, a Distributed table over the <name>_local tables of all
// shards, sharded by the table's ShardingKey. schema_migrations is one table
// replicated to every server (path /clickhouse/tables/all/<database>/
// schema_migrations, replica '{shard}_{replica}'): whichever server an
// instance connects to, it sees which migrations ran.
//
// The package speaks to ClickHouse through clickhouse-go's driver.Conn and
// imports nothing of dmarcd's pipeline.
package schema

// LocalSuffix names the shard-local table behind a Distributed table.
const LocalSuffix = "_local"

// RecordsOrderBy is the sorting key of aggregate_records; a staging table
// attached to it (ATTACH PARTITION ... FROM) must have the same one.
const RecordsOrderBy = "(policy_domain, date_begin, report_key, record_index)"

// Table is a table that cluster mode shards: its name and the sharding key
// of its Distributed table.
type Table struct {
	Name string
	// ShardingKey is sipHash64(report_key) for the tables of reports (all
	// rows of a report on one shard, the one store routes the report's
	// writes to), else sipHash64 of the sorting key (rows that a
	// ReplacingMergeTree or SummingMergeTree collapses meet on one shard).
	ShardingKey string
}

// Sharded lists every table of the migrations that cluster mode makes a
// Replicated <name>_local and a Distributed <name>: every table except
// schema_migrations. A migration's template names a table with .Local,
// .Engine, .Distributed or .Redistributed only when it is listed here.
var Sharded = []Table{
	{"aggregate_reports", "sipHash64(report_key)"},
	{"aggregate_records", "sipHash64(report_key)"},
	{"inputs", "sipHash64(time, sha256)"},
	{"failure_reports", "sipHash64(report_key)"},
	{"tlsrpt_reports", "sipHash64(report_key)"},
	{"tlsrpt_policies", "sipHash64(report_key)"},
	{"tlsrpt_failures", "sipHash64(report_key)"},
	{"source_attribution", "sipHash64(ip)"},
	{"dns_records", "sipHash64(domain, kind, checked_at)"},
	{"aggregate_rollup", "sipHash64(report_key)"},
	{"aggregate_sources", "sipHash64(report_key)"},
	{"aggregate_outcomes", "sipHash64(report_key)"},
	{"aggregate_pair_buckets", "sipHash64(report_key)"},
	{"input_attempts", "sipHash64(source, input_id)"},
}

// sharded finds a table of Sharded by name.
func sharded(name string) (Table, bool) {
	for _, t := range Sharded {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// Names is how one connection addresses the schema's tables: Plain on a
// single server and through a cluster's Distributed tables (every shard's
// rows), Local on one shard's server (that shard's own Replicated tables).
type Names struct{ local bool }

var (
	// Plain names each table by its own name: the table itself on a single
	// server, the Distributed table in a cluster.
	Plain = Names{}
	// Local names each table of Sharded by its shard-local name
	// (<name>_local) and any other table by its own name.
	Local = Names{local: true}
)

// Of is the name under which n addresses table.
func (n Names) Of(table string) string {
	if _, ok := sharded(table); n.local && ok {
		return table + LocalSuffix
	}
	return table
}
