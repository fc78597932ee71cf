package store

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// recordsOrderBy is the sorting key of aggregate_records; staging tables
// must have the same one for ATTACH PARTITION FROM.
const recordsOrderBy = "(policy_domain, date_begin, report_key, record_index)"

// migration is one versioned schema change, migrations/NNNN_name.sql.
type migration struct {
	Version uint32
	Name    string
	File    string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// migrations lists the embedded migrations in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var l []migration
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
		l = append(l, migration{Version: uint32(v), Name: m[2], File: path.Join("migrations", e.Name())})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Version < l[j].Version })
	return l, nil
}

// templateData is what migration templates see.
type templateData struct {
	OnCluster      string // "" or " ON CLUSTER `name`"
	Cluster        string
	Database       string
	RecordsOrderBy string
}

func (s *Store) templateData() templateData {
	d := templateData{Cluster: s.cluster, Database: s.database, RecordsOrderBy: recordsOrderBy}
	if s.cluster != "" {
		d.OnCluster = " ON CLUSTER " + quoteIdent(s.cluster)
	}
	return d
}

// engine renders a table engine: `engine "t" "ReplacingMergeTree" "ver"`
// gives ReplacingMergeTree(ver), or in cluster mode
// ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', ver).
func (s *Store) engine(table, name string, args ...string) string {
	if s.cluster != "" {
		zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s'", s.database, table)
		args = append([]string{zk, "'{replica}'"}, args...)
		name = "Replicated" + name
	}
	return name + "(" + strings.Join(args, ", ") + ")"
}

// render executes a migration template and splits it into statements.
func (s *Store) render(name, text string) ([]string, error) {
	t, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{"engine": s.engine, "globalEngine": s.globalEngine}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("migration %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s.templateData()); err != nil {
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

const schemaMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations{{.OnCluster}} (
    version     UInt32,
    name        String,
    applied_at  DateTime('UTC')
) ENGINE = {{globalEngine "schema_migrations" "ReplacingMergeTree" "applied_at"}}
ORDER BY version;`

// migrationStatements renders migration m's statements as Migrate sends
// them: for cluster mode (clusterize, with the tables of clusterTables) when
// s has a cluster.
func (s *Store) migrationStatements(m migration, clusterTables map[string]string) ([]string, error) {
	text, err := migrationFiles.ReadFile(m.File)
	if err != nil {
		return nil, err
	}
	stmts, err := s.render(m.File, string(text))
	if err != nil {
		return nil, err
	}
	if s.cluster != "" {
		stmts = s.clusterize(stmts, clusterTables)
	}
	return stmts, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, in version order, and records each. Every statement is
// idempotent (IF NOT EXISTS), so a migration interrupted half-way is simply
// applied again; running Migrate again is a no-op.
//
// In cluster mode (see cluster.go) statements run ON CLUSTER and each table
// becomes a Replicated <name>_local and a Distributed <name> (clusterize).
func (s *Store) Migrate(ctx context.Context) error {
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()
	if err := s.createSchemaMigrations(ctx); err != nil {
		return err
	}
	var clusterTables map[string]string
	if s.cluster != "" {
		var err error
		if clusterTables, err = s.clusterTables(); err != nil {
			return err
		}
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	list, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range list {
		if applied[m.Version] {
			continue
		}
		stmts, err := s.migrationStatements(m, clusterTables)
		if err != nil {
			return err
		}
		for i, q := range stmts {
			if err := s.execMigration(ctx, q); err != nil {
				return fmt.Errorf("migration %s, statement %d: %w", m.File, i+1, err)
			}
		}
		err = s.insertOne(ctx, "INSERT INTO schema_migrations (version, name, applied_at)",
			m.Version, m.Name, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("recording migration %s: %w", m.File, err)
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name, "database", s.database)
	}
	return nil
}

// ddlAttempts is how many times execMigration runs a statement whose
// distributed DDL timed out.
const ddlAttempts = 3

// execMigration runs one statement of a migration. A distributed DDL (ON
// CLUSTER) that a server has not run within distributed_ddl_task_timeout
// fails with code 159 although the server is up; ClickHouse's DDL worker
// sometimes leaves a task waiting until the next one arrives (seen once in
// the cluster tests, and reported upstream for many versions). Every
// statement is idempotent (IF NOT EXISTS, alreadyApplied), so it runs
// again, which queues a new task, up to ddlAttempts times.
func (s *Store) execMigration(ctx context.Context, q string) error {
	for attempt := 1; ; attempt++ {
		err := s.conn.Exec(ctx, q)
		if err == nil || alreadyApplied(q, err) {
			return nil
		}
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != errCodeTimeoutExceeded || attempt == ddlAttempts || ctx.Err() != nil {
			return err
		}
		s.log.Warn("distributed DDL not done everywhere in time; running it again", "attempt", attempt+1, "err", err)
	}
}

// errCodeTimeoutExceeded is ClickHouse's TIMEOUT_EXCEEDED, what a
// distributed DDL returns after distributed_ddl_task_timeout.
const errCodeTimeoutExceeded = 159

func (s *Store) appliedMigrations(ctx context.Context) (map[uint32]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}
