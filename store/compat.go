package store

// What compatibility tests (internal/testkit/compat) need to run the schema on
// other ClickHouse engines without a Store: the statements Migrate sends,
// and its judgement of their errors.

// SchemaStatement is one statement that Migrate sends, with the file it
// comes from ("schema_migrations" for that table).
type SchemaStatement struct {
	Migration string
	SQL       string
}

// SchemaStatements returns, in order, every DDL statement that Migrate
// sends to create the schema of database from nothing: schema_migrations,
// then each migration, rendered for a single server when cluster is "" and
// else for cluster mode (ON CLUSTER, clusterize). Migrate's INSERTs into
// schema_migrations are not among them.
func SchemaStatements(database, cluster string) ([]SchemaStatement, error) {
	s := &Store{database: database, cluster: cluster}
	stmts, err := s.render("schema_migrations", schemaMigrationsTable)
	if err != nil {
		return nil, err
	}
	var out []SchemaStatement
	for _, q := range stmts {
		out = append(out, SchemaStatement{Migration: "schema_migrations", SQL: q})
	}
	var tables map[string]string
	if cluster != "" {
		if tables, err = s.clusterTables(); err != nil {
			return nil, err
		}
	}
	list, err := migrations()
	if err != nil {
		return nil, err
	}
	for _, m := range list {
		stmts, err := s.migrationStatements(m, tables)
		if err != nil {
			return nil, err
		}
		for _, q := range stmts {
			out = append(out, SchemaStatement{Migration: m.File, SQL: q})
		}
	}
	return out, nil
}

// MigrationErrorIsApplied tells whether err, from running the migration
// statement q, means that q's effect is already there (Migrate then goes
// on): an ADD COLUMN whose column exists, on any supported version.
func MigrationErrorIsApplied(q string, err error) bool { return alreadyApplied(q, err) }
