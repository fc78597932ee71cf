package schema

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change, migrations/NNNN_name.sql.
type Migration struct {
	Version uint32
	Name    string
	File    string // "migrations/NNNN_name.sql"
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// Migrations lists the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var l []Migration
	seen := map[uint32]string{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name is not NNNN_name.sql", e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		if prev, ok := seen[uint32(v)]; ok {
			return nil, fmt.Errorf("migration files %s and %s have the same version", prev, e.Name())
		}
		seen[uint32(v)] = e.Name()
		l = append(l, Migration{Version: uint32(v), Name: m[2], File: path.Join("migrations", e.Name())})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Version < l[j].Version })
	return l, nil
}

// Target is the database a migration is rendered for: on a single server
// when Cluster is "", else on every server of the ClickHouse cluster
// Cluster (remote_servers in the servers' configuration).
type Target struct {
	Database string
	Cluster  string
}

// templateData is what a migration's template sees: the target and the
// functions that name its tables and engines.
type templateData struct {
	t Target
	// OnCluster is "" or " ON CLUSTER `name`".
	OnCluster string
	// RecordsOrderBy is aggregate_records' sorting key.
	RecordsOrderBy string
}

func (t Target) templateData() templateData {
	d := templateData{t: t, RecordsOrderBy: RecordsOrderBy}
	if t.Cluster != "" {
		d.OnCluster = " ON CLUSTER " + QuoteIdent(t.Cluster)
	}
	return d
}

// table returns the table of Sharded named name, or an error that a
// template names a table Sharded does not list.
func table(name string) (Table, error) {
	tb, ok := sharded(name)
	if !ok {
		return Table{}, fmt.Errorf("table %q is not in schema.Sharded", name)
	}
	return tb, nil
}

// Local names the table that holds the rows of table: table itself on a
// single server, `database`.`table_local` in a cluster (qualified: ON
// CLUSTER DDL runs on the other servers in their default database).
func (d templateData) Local(name string) (string, error) {
	if _, err := table(name); err != nil {
		return "", err
	}
	if d.t.Cluster == "" {
		return name, nil
	}
	return QuoteIdent(d.t.Database) + "." + QuoteIdent(name+LocalSuffix), nil
}

// dist is the qualified name of a cluster's Distributed table.
func (d templateData) dist(name string) string {
	return QuoteIdent(d.t.Database) + "." + QuoteIdent(name)
}

// Engine renders the engine of table: `.Engine "t" "ReplacingMergeTree"
// "ver"` gives ReplacingMergeTree(ver) on a single server, and
// ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t',
// '{replica}', ver) in a cluster.
func (d templateData) Engine(name, engine string, args ...string) (string, error) {
	if _, err := table(name); err != nil {
		return "", err
	}
	if d.t.Cluster != "" {
		zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s'", d.t.Database, name)
		args = append([]string{zk, "'{replica}'"}, args...)
		engine = "Replicated" + engine
	}
	return engine + "(" + strings.Join(args, ", ") + ")", nil
}

// GlobalEngine renders the engine of a table that every server of a
// cluster holds in full (schema_migrations): one ZooKeeper path for all
// shards, one replica per server. Single server: the plain engine.
func (d templateData) GlobalEngine(name, engine string, args ...string) string {
	if d.t.Cluster != "" {
		zk := fmt.Sprintf("'/clickhouse/tables/all/%s/%s'", d.t.Database, name)
		args = append([]string{zk, "'{shard}_{replica}'"}, args...)
		engine = "Replicated" + engine
	}
	return engine + "(" + strings.Join(args, ", ") + ")"
}

// Distributed follows the CREATE of table's local table: nothing on a
// single server; in a cluster the statement
//
//	CREATE TABLE IF NOT EXISTS `db`.`t` ON CLUSTER `c` AS `db`.`t_local`
//	ENGINE = Distributed(c, db, t_local, <sharding key>);
//
// on one line.
func (d templateData) Distributed(name string) (string, error) {
	tb, err := table(name)
	if err != nil || d.t.Cluster == "" {
		return "", err
	}
	local, _ := d.Local(name)
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, %s);",
		d.dist(name), d.OnCluster, local, d.t.Cluster, d.t.Database, name+LocalSuffix, tb.ShardingKey), nil
}

// Redistributed follows an ALTER of table's columns: nothing on a single
// server; in a cluster the Distributed table dropped and created again
// (Distributed), which takes the local table's new columns. An ALTER ON
// CLUSTER of the Distributed table itself is refused by 18.16 when the
// cluster's shards replicate internally.
func (d templateData) Redistributed(name string) (string, error) {
	create, err := d.Distributed(name)
	if err != nil || create == "" {
		return "", err
	}
	return "DROP TABLE IF EXISTS " + d.dist(name) + d.OnCluster + ";\n" + create, nil
}

// render executes a migration template and splits it into statements.
func (t Target) render(name, text string) ([]string, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("migration %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, t.templateData()); err != nil {
		return nil, fmt.Errorf("migration %s: %w", name, err)
	}
	return splitStatements(b.String()), nil
}

// splitStatements splits SQL at ";" ending a line, dropping "--" comment
// lines and empty statements.
func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			if strings.TrimSpace(stmt) != "" {
				stmts = append(stmts, stmt)
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		stmts = append(stmts, stmt)
	}
	return stmts
}

// schemaMigrationsTable is the template of schema_migrations, which lists
// the applied migrations.
const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations{{.OnCluster}} (
    version     UInt32,
    name        String,
    applied_at  DateTime('UTC')
) ENGINE = {{.GlobalEngine "schema_migrations" "ReplacingMergeTree" "applied_at"}}
ORDER BY version;`

// SchemaMigrationsStatements renders the creation of schema_migrations.
func (t Target) SchemaMigrationsStatements() ([]string, error) {
	return t.render("schema_migrations", schemaMigrationsTable)
}

// MigrationStatements renders migration m's statements as Migrate sends
// them to t.
func (t Target) MigrationStatements(m Migration) ([]string, error) {
	text, err := migrationFiles.ReadFile(m.File)
	if err != nil {
		return nil, err
	}
	return t.render(m.File, string(text))
}

// Statement is one statement that Migrate sends, with the file it comes
// from ("schema_migrations" for that table).
type Statement struct {
	Migration string
	SQL       string
}

// Statements returns, in order, every DDL statement that Migrate sends to
// create the schema of t from nothing: schema_migrations, then each
// migration. Migrate's INSERTs into schema_migrations are not among them.
func (t Target) Statements() ([]Statement, error) {
	stmts, err := t.SchemaMigrationsStatements()
	if err != nil {
		return nil, err
	}
	var out []Statement
	for _, q := range stmts {
		out = append(out, Statement{Migration: "schema_migrations", SQL: q})
	}
	list, err := Migrations()
	if err != nil {
		return nil, err
	}
	for _, m := range list {
		stmts, err := t.MigrationStatements(m)
		if err != nil {
			return nil, err
		}
		for _, q := range stmts {
			out = append(out, Statement{Migration: m.File, SQL: q})
		}
	}
	return out, nil
}

// QuoteIdent quotes a ClickHouse identifier with backquotes.
func QuoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}
