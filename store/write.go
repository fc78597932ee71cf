package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// InputMeta says where a report came from.
type InputMeta struct {
	Source      string // e.g. "imap", "s3", "spool", "file"
	InputName   string // the input's name as in the inputs table: file path, s3://bucket/key#etag, IMAP URL
	InputPart   string // where in the input the report was: MIME part, archive member ("" for a bare file)
	InputSHA256 string // of the whole input's bytes, hex; "" when not known before its rows were written
	// AuthResult is how the mail that carried the report authenticated on
	// arrival: "pass", "fail" or "unverified" ("" is "unverified");
	// AuthDetail says why (enrich/mailauth.go).
	AuthResult string
	AuthDetail string
	// ReceivedAt is when the input reached dmarcd: the arrival date of a
	// failure report that carries no date at all (failure.Report.Arrival);
	// the zero time means now.
	ReceivedAt time.Time
}

// received is m.ReceivedAt, or now when it is zero.
func (m InputMeta) received() time.Time {
	if m.ReceivedAt.IsZero() {
		return time.Now().UTC()
	}
	return m.ReceivedAt.UTC()
}

// authResult is the stored auth_result of meta.
func (m InputMeta) authResult() string {
	if m.AuthResult == "" {
		return "unverified"
	}
	return m.AuthResult
}

// Status is the outcome of WriteAggregate.
type Status string

// Statuses of WriteAggregate.
const (
	StatusStored    Status = "stored"    // the report row was written now
	StatusDuplicate Status = "duplicate" // the report was stored before
)

// WriteResult is what WriteAggregate did.
type WriteResult struct {
	Status    Status
	ReportKey string
	Records   int    // records in the report (rows next yielded)
	Messages  uint64 // sum of their counts
}

// WriteAggregate stores one report exactly once: its records in
// aggregate_records, then its row in aggregate_reports. next yields the rows
// and io.EOF at the end; WriteAggregate always drains it, also for a
// duplicate, so Records and Messages are the report's counts either way.
//
// The protocol (docs/schema.md, "Exactly once"), serialized per report key in
// this process:
//   - a report row with the key exists: duplicate, nothing is written;
//   - records with the key exist but no report row (a crash between the two
//     steps): the records are kept, only the report row is written;
//   - else the records are written atomically: up to BatchRows records in one
//     INSERT (one block in one partition), more through a staging table of
//     the same structure whose partition is then attached at once (ALTER
//     TABLE aggregate_records ATTACH PARTITION ... FROM staging), filled by
//     stagingSenders concurrent INSERTs; memory stays flat whatever the
//     report's size (about 115 MiB of heap for 1,000,000 records at the
//     default BatchRows). Then the report row.
//   - between the records and the report row, the report's sums in
//     aggregate_sources, aggregate_outcomes, aggregate_pair_buckets, then
//     aggregate_rollup, each in one atomic step
//     of its own (store/rollup.go);
//     the retry of a report whose records are stored writes them unless
//     they are there.
//
// All records of a report carry the report's date_begin, so they fall in one
// monthly partition. Two processes writing the same report at the same moment
// are serialized by a claim (Store.claim in cluster.go; docs/cluster.md,
// "Exactly once in a cluster").
//
// An error caused by the report itself, which every retry would meet again
// (ClickHouse refused one of its values: see refused.go), carries
// parse.StoreRefused; any other error is the store's and worth a retry.
func (s *Store) WriteAggregate(ctx context.Context, h *aggregate.Header, meta InputMeta, next func() (*enrich.Record, error)) (WriteResult, error) {
	if h != nil {
		failpointReport(h.ReportID)
	}
	var res WriteResult
	var err error
	if s.group != nil {
		res, err = s.group.writeAggregate(ctx, h, meta, next)
	} else {
		res, err = s.writeAggregate(ctx, h, meta, next)
	}
	return res, refused(err)
}

func (s *Store) writeAggregate(ctx context.Context, h *aggregate.Header, meta InputMeta, next func() (*enrich.Record, error)) (WriteResult, error) {
	if h == nil || next == nil {
		return WriteResult{}, errors.New("store: WriteAggregate: nil header or next")
	}
	key := aggregate.Key(h)
	rt := s.routeOf(key) // cluster mode: the local tables of the key's shard (route.go)
	res := WriteResult{ReportKey: key}
	unlock := s.locks.lock(key)
	defer unlock()
	release, err := s.claim(ctx, rt, key) // against other processes (cluster.go)
	if err != nil {
		return res, err
	}
	defer release()
	if s.group != nil {
		// A group commit on rt either saw this claim or ends before the
		// report is looked for (group.go).
		if err := s.waitGroupClaim(ctx, rt); err != nil {
			return res, fmt.Errorf("report %s: %w", key, err)
		}
	}

	exists, err := s.reportExists(ctx, rt, h, key)
	if err != nil {
		return res, err
	}
	if exists {
		res.Status = StatusDuplicate
		res.Records, res.Messages, err = drain(next)
		if err != nil {
			return res, fmt.Errorf("report %s: reading records: %w", key, err)
		}
		return res, nil
	}

	n, err := s.recordsWithKey(ctx, rt, h, key)
	if err != nil {
		return res, err
	}
	var c counts
	if n > 0 {
		// A previous attempt stored the records and died before the report
		// row: complete it.
		s.log.Info("completing report whose records are stored", "report_key", key, "report_id", h.ReportID, "stored_records", n)
		c, err = drainCounts(next)
		if err == nil {
			err = s.completeRollup(ctx, rt, policyDomain(h), h.Begin.UTC(), key, dataKeyOf(meta))
		}
	} else {
		c, err = s.insertRecords(ctx, rt, h, key, dataKeyOf(meta), next)
	}
	res.Records, res.Messages = c.records, c.messages
	if err != nil {
		return res, fmt.Errorf("report %s (%s, %s): %w", key, quoteField(h.OrgName), quoteField(h.ReportID), err)
	}
	if n > 0 && uint64(c.records) != n {
		s.log.Warn("stored records differ from the report's", "report_key", key, "stored_records", n, "records", c.records)
	}
	failpoint("after-rollup")
	if err := s.insertReport(ctx, rt, h, key, meta, c); err != nil {
		return res, fmt.Errorf("report %s (%s, %s): writing report row: %w", key, quoteField(h.OrgName), quoteField(h.ReportID), err)
	}
	failpoint("after-report")
	res.Status = StatusStored
	return res, nil
}

// counts of a report's records.
type counts struct {
	records  int
	messages uint64
	invalid  uint64
}

// drainCounts reads next to its end, counting records, messages and
// invalid records.
func drainCounts(next func() (*enrich.Record, error)) (c counts, err error) {
	for {
		r, err := next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		if r == nil || r.Record == nil {
			return c, errNilRow
		}
		c.records++
		c.messages += r.Count
		if r.Invalid != "" {
			c.invalid++
		}
	}
}

// reportExists tells whether aggregate_reports holds the report.
func (s *Store) reportExists(ctx context.Context, rt route, h *aggregate.Header, key string) (bool, error) {
	var n uint64
	err := rt.conn.QueryRow(ctx, `SELECT count() FROM `+rt.table("aggregate_reports")+`
		WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?`,
		policyDomain(h), unixSeconds(h.Begin), key).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("report %s: looking for its report row: %w", key, err)
	}
	return n > 0, nil
}

// recordsWithKey counts the stored records of a report.
func (s *Store) recordsWithKey(ctx context.Context, rt route, h *aggregate.Header, key string) (uint64, error) {
	var n uint64
	err := rt.conn.QueryRow(ctx, `SELECT count() FROM `+rt.table("aggregate_records")+`
		WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?`,
		policyDomain(h), unixSeconds(h.Begin), key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("report %s: looking for its records: %w", key, err)
	}
	return n, nil
}

// insertRecords writes all records of a report so that they appear at once:
// one INSERT when they fit in BatchRows, else a staging table attached in
// one step.
func (s *Store) insertRecords(ctx context.Context, rt route, h *aggregate.Header, key, dataKey string, next func() (*enrich.Record, error)) (c counts, err error) {
	cols := newRecordColumns(s.batchRows)
	rep := &reportFields{key: key, id: h.ReportID, org: h.OrgName, domain: policyDomain(h),
		begin: h.Begin.UTC(), end: h.End.UTC(), dataKey: dataKey}
	staging := ""
	defer func() {
		if staging == "" {
			return
		}
		// Also after a cancelled ctx: leave nothing behind if we can.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := rt.conn.Exec(dctx, "DROP TABLE IF EXISTS "+staging); derr != nil {
			s.log.Warn("dropping staging table", "table", staging, "err", derr)
		}
	}()
	var w *stagingWriter
	for {
		r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c, fmt.Errorf("reading record %d: %w", c.records, err)
		}
		if r == nil || r.Record == nil {
			return c, errNilRow
		}
		if cols.len() == s.batchRows {
			if w == nil {
				if staging, err = s.createStaging(ctx, rt); err != nil {
					return c, err
				}
				w = s.newStagingWriter(ctx, rt, staging)
				defer w.close() // before the drop above
			}
			if cols, err = w.send(cols); err != nil {
				return c, err
			}
		}
		cols.add(rep, uint32(c.records), r)
		c.records++
		c.messages += r.Count
		if r.Invalid != "" {
			c.invalid++
		}
	}
	if w == nil {
		if cols.len() == 0 {
			return c, nil
		}
		if err := s.sendRecords(ctx, rt, "aggregate_records", cols); err != nil {
			return c, err
		}
		failpoint("after-records")
		return c, s.sendRollup(ctx, rt, rep, cols)
	}
	if cols.len() > 0 {
		if _, err := w.send(cols); err != nil {
			return c, err
		}
	}
	if err := w.close(); err != nil {
		return c, err
	}
	// The rollup is summed from the staged records, then attached after
	// them (a retry that finds the records but no rollup sums them again).
	rollups, err := s.stageRollupsOf(ctx, rt, staging, rep, &w.sums)
	if err != nil {
		return c, err
	}
	defer s.dropStagedRollups(ctx, rt, rollups)
	failpoint("after-staging")
	if err := s.attachStaging(ctx, rt, staging); err != nil {
		return c, err
	}
	failpoint("after-records")
	return c, s.attachRollups(ctx, rt, rollups)
}

// stagingSenders is how many batches are sent to a staging table at once:
// while the server writes one, the next is encoded and sent. A large report
// holds 1+stagingSenders buffers of BatchRows records.
const stagingSenders = 2

// stagingWriter sends full record buffers to a staging table on rt from
// stagingSenders goroutines, each on its own connection, and sums them into
// sums (rollup.go) there, off the goroutine that parses.
type stagingWriter struct {
	rt     route
	table  string
	ctx    context.Context
	cancel context.CancelFunc
	work   chan *recordColumns
	free   chan *recordColumns
	wg     sync.WaitGroup
	once   sync.Once
	mu     sync.Mutex
	err    error
	sumsMu sync.Mutex
	sums   streamSums // complete after close
}

func (s *Store) newStagingWriter(ctx context.Context, rt route, table string) *stagingWriter {
	w := &stagingWriter{rt: rt, table: table,
		work: make(chan *recordColumns),
		free: make(chan *recordColumns, stagingSenders+1)}
	w.ctx, w.cancel = context.WithCancel(ctx)
	for range stagingSenders {
		w.free <- newRecordColumns(s.batchRows)
		w.wg.Add(1)
		go w.run()
	}
	return w
}

// run keeps one INSERT open on the staging table and sends each buffer as
// one more block of it (Batch.Flush): the server squashes the blocks of an
// INSERT into large parts (min_insert_block_size_rows), which is much less
// work for it than a part per block, while this process holds only the
// buffers in flight. Atomicity comes from the staging table, not from the
// INSERT.
func (w *stagingWriter) run() {
	defer w.wg.Done()
	var b driver.Batch
	rows := 0
	fail := func(err error) {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		w.cancel()
	}
	for cols := range w.work {
		if w.failed() == nil {
			var err error
			if b == nil {
				b, err = w.rt.conn.PrepareBatch(w.ctx, "INSERT INTO "+w.table+" ("+recordColumnList+")")
			}
			if err == nil {
				err = appendColumns(b, cols.columns())
			}
			if err == nil {
				err = b.Flush()
			}
			if err != nil {
				fail(fmt.Errorf("inserting records into %s: %w", w.table, err))
			}
			rows += cols.len()
			w.sumsMu.Lock()
			w.sums.add(cols)
			w.sumsMu.Unlock()
		}
		cols.reset()
		w.free <- cols
	}
	if b == nil {
		return
	}
	if w.failed() != nil {
		b.Abort()
		return
	}
	if err := b.Send(); err != nil {
		fail(fmt.Errorf("inserting %d records into %s: %w", rows, w.table, err))
	}
}

func (w *stagingWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// send hands a full buffer to a sender and returns an empty one. A sender
// always gives its buffer back, so one is free after the handover.
func (w *stagingWriter) send(cols *recordColumns) (*recordColumns, error) {
	if err := w.failed(); err != nil {
		return cols, err
	}
	w.work <- cols
	return <-w.free, nil
}

// close waits for the senders and returns the first error. It may be called
// more than once.
func (w *stagingWriter) close() error {
	w.once.Do(func() {
		close(w.work)
		w.wg.Wait()
		w.cancel()
	})
	return w.failed()
}

const stagingPrefix = "aggregate_records_staging_"

// createStaging creates an empty table with aggregate_records' structure,
// partition key and sorting key, local to rt's server.
func (s *Store) createStaging(ctx context.Context, rt route) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := stagingPrefix + hex.EncodeToString(rnd[:])
	q := fmt.Sprintf("CREATE TABLE %s AS %s ENGINE = MergeTree() PARTITION BY toYYYYMM(date_begin) ORDER BY %s",
		name, rt.table("aggregate_records"), recordsOrderBy)
	if err := rt.conn.Exec(ctx, q); err != nil {
		return "", fmt.Errorf("creating staging table: %w", err)
	}
	// Its parts are merged once, in aggregate_records after the attach, not
	// also here. Only an optimisation: go on if the server refuses.
	if err := rt.conn.Exec(ctx, "SYSTEM STOP MERGES "+name); err != nil {
		s.log.Debug("stopping merges of staging table", "table", name, "err", err)
	}
	return name, nil
}

// attachStaging moves the staging table's partitions (one: the report's
// month) into aggregate_records. Each ATTACH makes all parts of a partition
// visible at once.
func (s *Store) attachStaging(ctx context.Context, rt route, staging string) error {
	return s.attachPartition(ctx, rt, "aggregate_records", staging)
}

// attachPartition attaches the one partition of a staging table to table
// (as rt names it): all its rows appear at once. Staged rows carry the
// report's date_begin, so one partition; attaching several would not be
// atomic.
func (s *Store) attachPartition(ctx context.Context, rt route, table, staging string) error {
	parts, err := s.partitions(ctx, rt, staging)
	if err != nil {
		return err
	}
	if len(parts) != 1 {
		return fmt.Errorf("%s staging table %s holds %d partitions, want 1", table, staging, len(parts))
	}
	q := fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID '%s' FROM %s", rt.table(table), parts[0], staging)
	if err := rt.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("attaching %s partition %s from %s: %w", table, parts[0], staging, err)
	}
	return nil
}

// tablesWithPrefix lists the tables of the store's database on rt's server
// whose names start with prefix.
func (s *Store) tablesWithPrefix(ctx context.Context, rt route, prefix string) ([]string, error) {
	rows, err := rt.conn.Query(ctx, `SELECT name FROM system.tables
		WHERE database = currentDatabase() AND startsWith(name, ?)`, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// dropOrphanedStaging drops staging tables of writers that died. Run at
// Open, before this process writes.
func (s *Store) dropOrphanedStaging(ctx context.Context, rt route) error {
	names, err := s.tablesWithPrefix(ctx, rt, stagingPrefix)
	if err != nil {
		return fmt.Errorf("listing staging tables: %w", err)
	}
	for _, n := range names {
		if !identRe.MatchString(n) {
			continue
		}
		if err := rt.conn.Exec(ctx, "DROP TABLE IF EXISTS "+n); err != nil {
			return fmt.Errorf("dropping orphaned staging table %s: %w", n, err)
		}
		s.log.Info("dropped orphaned staging table", "table", n)
	}
	return nil
}

// insertReport writes the report row.
func (s *Store) insertReport(ctx context.Context, rt route, h *aggregate.Header, key string, meta InputMeta, c counts) error {
	return rt.insertOne(ctx, reportRowInsert(rt), reportRow(h, key, meta, c)...)
}

// reportRowInsert is the INSERT of report rows on rt; reportRow gives a
// row's values in its order.
func reportRowInsert(rt route) string {
	return `INSERT INTO ` + rt.table("aggregate_reports") + ` (report_key, org_name, org_email,
		extra_contact_info, report_id, policy_domain, date_begin, date_end,
		adkim, aspf, p, sp, np, pct, fo, testing, discovery_method,
		schema, version, errors, generator, record_count, message_count, invalid_records,
		source, input_name, input_sha256, ingested_at, auth_result, auth_detail, input_part)`
}

// reportRow is the values of a report's row in aggregate_reports.
func reportRow(h *aggregate.Header, key string, meta InputMeta, c counts) []any {
	errs := h.Errors
	if errs == nil {
		errs = []string{}
	}
	return []any{key, h.OrgName, h.Email, h.ExtraContactInfo, h.ReportID, policyDomain(h), h.Begin.UTC(), h.End.UTC(),
		opt(h.ADKIM), opt(h.ASPF), opt(h.P), opt(h.SP), opt(h.NP), opt(h.Pct), opt(h.Fo), opt(h.Testing), opt(h.DiscoveryMethod),
		h.Schema, h.Version, errs, h.Generator, uint64(c.records), c.messages, c.invalid,
		meta.Source, meta.InputName, meta.InputSHA256, time.Now().UTC(), meta.authResult(), meta.AuthDetail, meta.InputPart}
}

func opt(o aggregate.Opt) *string {
	if !o.Set {
		return nil
	}
	v := o.Value
	return &v
}

func unixSeconds(t time.Time) uint32 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	if u > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(u)
}

// reportFields are the report's fields repeated in each record row.
type reportFields struct {
	key, id, org, domain string
	begin, end           time.Time
	dataKey              string // report_key of its rollups' data rows (dataKeyOf)
}

// recordColumns buffers records column by column, the form the native
// protocol sends (and far faster to append than row by row).
type recordColumns struct {
	reportKey, reportID              []string
	recordIndex                      []uint32
	orgName, policyDomain            []string
	dateBegin, dateEnd               []time.Time
	sourceIP                         []string
	messageCount                     []uint64
	disposition, dmarcDKIM, dmarcSPF []string
	overrideTypes, overrideComments  [][]string
	headerFrom, headerFromOrg        []string
	envelopeFrom, envelopeTo         []*string
	dkimDomains, dkimSelectors       [][]string
	dkimResults, dkimHumanResults    [][]string
	spfDomains, spfScopes            [][]string
	spfResults, spfHumanResults      [][]string
	dkimRelaxed, dkimStrict          []uint8
	spfRelaxed, spfStrict, dmarcPass []uint8
	recordError                      []string
	slab                             []string // backs the DKIM and SPF arrays (carve)
	slabSize                         int      // strings of a new slab; 0: slabStrings
}

// recordColumnList is the column list of INSERTs into aggregate_records, in
// the order of recordColumns.columns.
const recordColumnList = `report_key, report_id, record_index, org_name, policy_domain,
	date_begin, date_end, source_ip, message_count, disposition, dmarc_dkim, dmarc_spf,
	override_types, override_comments, header_from, header_from_org, envelope_from, envelope_to,
	dkim_domains, dkim_selectors, dkim_results, dkim_human_results,
	spf_domains, spf_scopes, spf_results, spf_human_results,
	dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	dmarc_pass, record_error`

func (c *recordColumns) columns() []any {
	return []any{c.reportKey, c.reportID, c.recordIndex, c.orgName, c.policyDomain,
		c.dateBegin, c.dateEnd, c.sourceIP, c.messageCount, c.disposition, c.dmarcDKIM, c.dmarcSPF,
		c.overrideTypes, c.overrideComments, c.headerFrom, c.headerFromOrg, c.envelopeFrom, c.envelopeTo,
		c.dkimDomains, c.dkimSelectors, c.dkimResults, c.dkimHumanResults,
		c.spfDomains, c.spfScopes, c.spfResults, c.spfHumanResults,
		c.dkimRelaxed, c.dkimStrict, c.spfRelaxed, c.spfStrict,
		c.dmarcPass, c.recordError}
}

func newRecordColumns(n int) *recordColumns {
	if n > 1<<16 {
		n = 1 << 16
	}
	c := &recordColumns{slabSize: min(slabStrings, max(64, n*slabPerRecord))}
	c.grow(n)
	return c
}

func (c *recordColumns) grow(n int) {
	c.reportKey = make([]string, 0, n)
	c.reportID = make([]string, 0, n)
	c.recordIndex = make([]uint32, 0, n)
	c.orgName = make([]string, 0, n)
	c.policyDomain = make([]string, 0, n)
	c.dateBegin = make([]time.Time, 0, n)
	c.dateEnd = make([]time.Time, 0, n)
	c.sourceIP = make([]string, 0, n)
	c.messageCount = make([]uint64, 0, n)
	c.disposition = make([]string, 0, n)
	c.dmarcDKIM = make([]string, 0, n)
	c.dmarcSPF = make([]string, 0, n)
	c.overrideTypes = make([][]string, 0, n)
	c.overrideComments = make([][]string, 0, n)
	c.headerFrom = make([]string, 0, n)
	c.headerFromOrg = make([]string, 0, n)
	c.envelopeFrom = make([]*string, 0, n)
	c.envelopeTo = make([]*string, 0, n)
	c.dkimDomains = make([][]string, 0, n)
	c.dkimSelectors = make([][]string, 0, n)
	c.dkimResults = make([][]string, 0, n)
	c.dkimHumanResults = make([][]string, 0, n)
	c.spfDomains = make([][]string, 0, n)
	c.spfScopes = make([][]string, 0, n)
	c.spfResults = make([][]string, 0, n)
	c.spfHumanResults = make([][]string, 0, n)
	c.dkimRelaxed = make([]uint8, 0, n)
	c.dkimStrict = make([]uint8, 0, n)
	c.spfRelaxed = make([]uint8, 0, n)
	c.spfStrict = make([]uint8, 0, n)
	c.dmarcPass = make([]uint8, 0, n)
	c.recordError = make([]string, 0, n)
}

func (c *recordColumns) len() int { return len(c.reportKey) }

// reset empties the buffers, keeping their capacity.
func (c *recordColumns) reset() {
	c.reportKey = c.reportKey[:0]
	c.reportID = c.reportID[:0]
	c.recordIndex = c.recordIndex[:0]
	c.orgName = c.orgName[:0]
	c.policyDomain = c.policyDomain[:0]
	c.dateBegin = c.dateBegin[:0]
	c.dateEnd = c.dateEnd[:0]
	c.sourceIP = c.sourceIP[:0]
	c.messageCount = c.messageCount[:0]
	c.disposition = c.disposition[:0]
	c.dmarcDKIM = c.dmarcDKIM[:0]
	c.dmarcSPF = c.dmarcSPF[:0]
	clear(c.overrideTypes)
	c.overrideTypes = c.overrideTypes[:0]
	clear(c.overrideComments)
	c.overrideComments = c.overrideComments[:0]
	c.headerFrom = c.headerFrom[:0]
	c.headerFromOrg = c.headerFromOrg[:0]
	clear(c.envelopeFrom)
	c.envelopeFrom = c.envelopeFrom[:0]
	clear(c.envelopeTo)
	c.envelopeTo = c.envelopeTo[:0]
	for _, a := range []*[][]string{&c.dkimDomains, &c.dkimSelectors, &c.dkimResults, &c.dkimHumanResults,
		&c.spfDomains, &c.spfScopes, &c.spfResults, &c.spfHumanResults} {
		clear(*a)
		*a = (*a)[:0]
	}
	c.dkimRelaxed = c.dkimRelaxed[:0]
	c.dkimStrict = c.dkimStrict[:0]
	c.spfRelaxed = c.spfRelaxed[:0]
	c.spfStrict = c.spfStrict[:0]
	c.dmarcPass = c.dmarcPass[:0]
	c.recordError = c.recordError[:0]
	c.slab = nil // a batch may keep the strings it was given (carve)
}

// slabStrings is the largest size of a new string slab: a few thousand
// records' DKIM and SPF columns. A buffer made for fewer records (a small
// report of a group) takes slabs of slabPerRecord strings a record: a
// record with one DKIM and one SPF result, the common one, fills its
// share, so a group's thousands of buffers hold no unused slab.
const (
	slabStrings   = 1 << 14
	slabPerRecord = 8
)

// carve returns n strings of the buffer's slab, a new slab when the
// current one is full: the DKIM and SPF arrays of a record cost an
// allocation per slabStrings strings rather than two per record. A slab is
// never reused (reset drops it): a driver.Batch may keep the slices it was
// given after the buffer is sent.
func (c *recordColumns) carve(n int) []string {
	if n == 0 {
		return nil
	}
	if cap(c.slab)-len(c.slab) < n {
		size := c.slabSize
		if size == 0 {
			size = slabStrings
		}
		c.slab = make([]string, 0, max(n, size))
	}
	l := len(c.slab)
	c.slab = c.slab[:l+n]
	return c.slab[l : l+n : l+n]
}

// add appends one record. It copies what it keeps, so the producer may reuse
// its Record and slices after next returns.
func (c *recordColumns) add(rep *reportFields, index uint32, r *enrich.Record) {
	c.reportKey = append(c.reportKey, rep.key)
	c.reportID = append(c.reportID, rep.id)
	c.recordIndex = append(c.recordIndex, index)
	c.orgName = append(c.orgName, rep.org)
	c.policyDomain = append(c.policyDomain, rep.domain)
	c.dateBegin = append(c.dateBegin, rep.begin)
	c.dateEnd = append(c.dateEnd, rep.end)
	c.sourceIP = append(c.sourceIP, r.SourceIP)
	c.messageCount = append(c.messageCount, r.Count)
	c.disposition = append(c.disposition, r.Disposition)
	c.dmarcDKIM = append(c.dmarcDKIM, r.EvalDKIM)
	c.dmarcSPF = append(c.dmarcSPF, r.EvalSPF)

	// Nil, not empty, when there is no override (nearly every record): a
	// nil slice becomes an interface (appendColumns' AppendRow) without an
	// allocation, an empty one with one.
	var types, comments []string
	if len(r.Reasons) > 0 {
		types = make([]string, len(r.Reasons))
		comments = make([]string, len(r.Reasons))
		for i, x := range r.Reasons {
			types[i], comments[i] = x.Type, x.Comment
		}
	}
	c.overrideTypes = append(c.overrideTypes, types)
	c.overrideComments = append(c.overrideComments, comments)

	c.headerFrom = append(c.headerFrom, r.HeaderFrom)
	c.headerFromOrg = append(c.headerFromOrg, r.HeaderFromOrg)
	c.envelopeFrom = append(c.envelopeFrom, opt(r.EnvelopeFrom))
	c.envelopeTo = append(c.envelopeTo, opt(r.EnvelopeTo))

	// The four DKIM columns and the four SPF ones share one stretch of
	// the buffer's string slab.
	nd, ns := len(r.DKIM), len(r.SPF)
	d := c.carve(4*nd + 4*ns)
	sp := d[4*nd:]
	d = d[: 4*nd : 4*nd]
	for i, x := range r.DKIM {
		d[i], d[nd+i], d[2*nd+i], d[3*nd+i] = x.Domain, x.Selector, x.Result, x.HumanResult
	}
	c.dkimDomains = append(c.dkimDomains, d[:nd:nd])
	c.dkimSelectors = append(c.dkimSelectors, d[nd:2*nd:2*nd])
	c.dkimResults = append(c.dkimResults, d[2*nd:3*nd:3*nd])
	c.dkimHumanResults = append(c.dkimHumanResults, d[3*nd:])
	for i, x := range r.SPF {
		sp[i], sp[ns+i], sp[2*ns+i], sp[3*ns+i] = x.Domain, x.Scope, x.Result, x.HumanResult
	}
	c.spfDomains = append(c.spfDomains, sp[:ns:ns])
	c.spfScopes = append(c.spfScopes, sp[ns:2*ns:2*ns])
	c.spfResults = append(c.spfResults, sp[2*ns:3*ns:3*ns])
	c.spfHumanResults = append(c.spfHumanResults, sp[3*ns:])

	c.dkimRelaxed = append(c.dkimRelaxed, b2u(r.DKIMAlignedRelaxed))
	c.dkimStrict = append(c.dkimStrict, b2u(r.DKIMAlignedStrict))
	c.spfRelaxed = append(c.spfRelaxed, b2u(r.SPFAlignedRelaxed))
	c.spfStrict = append(c.spfStrict, b2u(r.SPFAlignedStrict))
	c.dmarcPass = append(c.dmarcPass, b2u(r.DMARCPass))
	c.recordError = append(c.recordError, r.Invalid)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// sendRecords sends the buffered records to table (as rt names it) in one
// INSERT (one block).
func (s *Store) sendRecords(ctx context.Context, rt route, table string, cols *recordColumns) error {
	b, err := rt.conn.PrepareBatch(ctx, "INSERT INTO "+rt.table(table)+" ("+recordColumnList+")")
	if err != nil {
		return fmt.Errorf("inserting records into %s: %w", table, err)
	}
	if err := appendColumns(b, cols.columns()); err != nil {
		b.Abort()
		return fmt.Errorf("inserting records into %s: %w", table, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("inserting %d records into %s: %w", cols.len(), table, err)
	}
	return nil
}

func appendColumns(b driver.Batch, cols []any) error {
	for i, col := range cols {
		var err error
		if arrays, ok := col.([][]string); ok {
			// Row by row: Append of a [][]string goes through reflection,
			// AppendRow of a []string does not (several times faster).
			bc := b.Column(i)
			for _, a := range arrays {
				if err = bc.AppendRow(a); err != nil {
					break
				}
			}
		} else {
			err = b.Column(i).Append(col)
		}
		if err != nil {
			name := strings.TrimSpace(strings.Split(recordColumnList, ",")[i])
			return fmt.Errorf("column %s: %w", name, err)
		}
	}
	return nil
}

// keyLocks serializes writers per report key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock function.
func (l *keyLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

// policyDomain is the report's policy domain as stored and as aggregate.Key
// sees it: lower-cased, without a trailing dot (the parser already does so).
func policyDomain(h *aggregate.Header) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h.Domain)), ".")
}
