package store

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// Group commit (Options.Group; docs/schema.md, "Group commit"): small
// reports (at most BatchRows records) that arrive together are committed
// together, one INSERT per table for all of them.
//
// WriteAggregate reads a report's records into memory; a small one joins
// the pending group of its route (the server, or in cluster mode the shard
// of its key) and its caller blocks until that group committed, so a
// source still acknowledges an input only after its reports are stored. A
// larger one takes the path of one report (writeAggregate).
//
// One goroutine per route commits its groups one after another, paced by
// a budget of parts (GroupOptions.PartsPerSecond): ClickHouse recommends
// few new parts per second for a MergeTree table, and counts them per
// partition (parts_to_delay_insert and parts_to_throw_insert bound a
// partition's active parts; merges work within a partition). A commit
// makes one INSERT per table, which adds one part to each monthly
// partition it touches (partsOf counts them, for the log): so each commit
// adds at most one part to any partition, and the route's next commit
// waits until 1 / PartsPerSecond after its start, less the credit the
// route saved while it committed less often (at most Burst: the generic
// cell rate algorithm of ITU-T I.371, lane.paced). Once that time has
// passed, a group is committed when it holds GroupOptions.MaxRecords
// records or MaxBytes bytes; when no writer is reading a report any more
// (every writer in WriteAggregate waits for this group, so none can join
// it); or else once Window has passed since the previous commit of the
// route began. So a single mail on an idle route is committed at once, a
// source with a few concurrent inputs commits them together, and whatever
// the arrival pattern no partition of a route's tables receives more than
// PartsPerSecond new parts per second in the long run (and at most Burst's
// worth ahead of it): a group that is full before its time waits, its
// callers blocked (back-pressure on the sources), and at its time at most
// MaxRecords records and MaxBytes bytes of it are committed, the rest
// waiting for the next commit (lane.ready). A backlog spread over many
// months makes parts in each of them at that rate: its total is the
// partitions times the commits, the commits as few as the groups' size
// bounds allow.
//
// A group's commit (commitGroup):
//  1. claims the route's group claim (groupClaim: one claim table, taken
//     as claim takes a report's; one group at a time per server across
//     processes);
//  2. hands to the path of one report every report whose key is claimed
//     by a writer on that path (its claim table exists): a large report,
//     or one left by a failed group;
//  3. reads which of the group's reports have a report row (duplicates)
//     or records without one (a writer died in between), each in one
//     query for the whole group; the latter take the path of one report,
//     which completes them;
//  4. inserts the records of the remaining reports in one INSERT, then
//     each rollup table's rows of them in one INSERT (summed per report in
//     Go, as for a single small report), then their report rows in one
//     INSERT, with the failpoints of a single report's commit between the
//     steps;
//  5. drops the group claim.
//
// Every table is partitioned by month and a report's rows fall in one
// month, so each report's rows of a table are in one part: a crash leaves
// each report of the group either with all its rows of a table or none,
// exactly as a crash of the single-report path does, and the retry
// completes it (the report row is written last). A writer on the path of
// one report waits, after taking its report's claim, until no group claim
// is held (waitGroupClaim): a group that began before saw its claim and left
// the report alone, or committed before the writer looks for the report.
// When a group's commit fails, each of its reports is written on its own
// by the path of one report, which also sets aside alone a report whose
// values ClickHouse refuses.

// GroupOptions bound the groups of Options.Group; zero fields take the
// defaults.
type GroupOptions struct {
	MaxRecords int           // commit once a group holds this many records (default 50,000)
	MaxBytes   int64         // ... or about this many bytes of record text (default 32 MiB)
	Window     time.Duration // at most one commit per route per Window, size bounds aside (default 200 ms)
	// PartsPerSecond is the budget of new parts a second in any one
	// partition of a route's tables: a commit adds at most one to each, so
	// it delays the route's next commit to 1 / PartsPerSecond after its
	// start (default DefaultGroupPartsPerSecond), less the credit the
	// route saved while idle, at most Burst (default DefaultGroupBurst): a
	// backlog's first commits, or a day's mail after a quiet hour, are not
	// delayed.
	PartsPerSecond int
	Burst          time.Duration
}

// Defaults of GroupOptions.
const (
	DefaultGroupMaxRecords     = 50000
	DefaultGroupMaxBytes       = 32 << 20
	DefaultGroupWindow         = 200 * time.Millisecond
	DefaultGroupPartsPerSecond = 2
	DefaultGroupBurst          = 10 * time.Second
)

func (o GroupOptions) withDefaults() GroupOptions {
	if o.MaxRecords <= 0 {
		o.MaxRecords = DefaultGroupMaxRecords
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultGroupMaxBytes
	}
	if o.Window <= 0 {
		o.Window = DefaultGroupWindow
	}
	if o.PartsPerSecond <= 0 {
		o.PartsPerSecond = DefaultGroupPartsPerSecond
	}
	if o.Burst <= 0 {
		o.Burst = DefaultGroupBurst
	}
	return o
}

// pace is how long commits that added parts parts to a partition delay
// the next commit of their route, after the start of the first.
func (o GroupOptions) pace(parts int) time.Duration {
	return time.Duration(parts) * time.Second / time.Duration(o.PartsPerSecond)
}

// groupClaim is the name of the claim table a group commit holds on its
// route (claimNamed); it starts with claimPrefix, so Open drops it when its
// holder died.
const groupClaim = claimPrefix + "group"

// committer forms and commits the groups of a Store.
type committer struct {
	s      *Store
	opt    GroupOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	lanes  map[int]*lane // by route: shard index, 0 on a single server
	// readers counts the writers reading a report's records, which may
	// join a group yet.
	readers atomic.Int64
}

// lane is the pending group of one route.
type lane struct {
	rt        route
	wake      chan struct{}
	mu        sync.Mutex // guards what follows
	closed    bool
	pending   []*groupItem
	records   int
	bytes     int64
	lastStart time.Time
	// tat is the time at which the parts of the route's commits so far are
	// paid for at GroupOptions.PartsPerSecond (the theoretical arrival
	// time of GCRA); the next commit may begin at tat less Burst.
	tat time.Time
}

// groupItem is one small report waiting for its group's commit.
type groupItem struct {
	h     *aggregate.Header
	meta  InputMeta
	key   string
	recs  []enrich.Record // copies (enrich.Record and its slices)
	c     counts
	bytes int64
	done  chan struct{}
	// Set by the commit before done is closed.
	status Status
	single bool // write it on the path of one report instead
}

func newCommitter(s *Store, opt GroupOptions) *committer {
	c := &committer{s: s, opt: opt.withDefaults(), lanes: map[int]*lane{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// close stops the lanes after the commit in flight; reports still pending
// take the path of one report in their callers.
func (c *committer) close() {
	c.mu.Lock()
	c.cancel() // under mu: laneOf starts no lane after it
	c.mu.Unlock()
	c.wg.Wait()
}

// laneOf is the lane of a report key, started on first use; nil once the
// committer is closed.
func (c *committer) laneOf(key string) *lane {
	i := 0
	if n := len(c.s.shards); n > 0 {
		i = shardIndex(key, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return nil // closed
	}
	l := c.lanes[i]
	if l == nil {
		l = &lane{rt: c.s.routeOf(key), wake: make(chan struct{}, 1)}
		c.lanes[i] = l
		c.wg.Add(1)
		go c.run(l)
	}
	return l
}

// writeAggregate is WriteAggregate with group commit: it reads the
// report's records, and a small report waits for its group; a large one,
// and one the group hands back, takes the path of one report.
func (c *committer) writeAggregate(ctx context.Context, h *aggregate.Header, meta InputMeta, next func() (*enrich.Record, error)) (WriteResult, error) {
	s := c.s
	if h == nil || next == nil {
		return s.writeAggregate(ctx, h, meta, next)
	}
	it := &groupItem{h: h, meta: meta, key: aggregate.Key(h), done: make(chan struct{})}
	c.readers.Add(1)
	reading := true
	defer func() {
		if reading {
			c.doneReading()
		}
	}()
	alone := func(err error, r *enrich.Record) (WriteResult, error) {
		if reading {
			reading = false
			c.doneReading() // it joins no group
		}
		return s.writeAggregate(ctx, h, meta, it.replay(err, r, next))
	}
	for {
		r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil || r == nil || r.Record == nil || len(it.recs) == s.batchRows {
			// Large, or broken: the path of one report reads on, after
			// the records read so far.
			if err == nil && r != nil && r.Record != nil {
				it.add(r)
			}
			return alone(err, r)
		}
		it.add(r)
	}
	l := c.laneOf(it.key)
	if len(it.recs) == 0 || l == nil {
		return alone(io.EOF, nil)
	}
	reading = false
	if !c.submit(l, it) {
		return s.writeAggregate(ctx, h, meta, it.replay(io.EOF, nil, next))
	}
	select {
	case <-it.done:
	case <-ctx.Done():
		return WriteResult{ReportKey: it.key, Records: it.c.records, Messages: it.c.messages}, ctx.Err()
	}
	if it.single {
		return s.writeAggregate(ctx, h, meta, it.replay(io.EOF, nil, next))
	}
	return WriteResult{Status: it.status, ReportKey: it.key, Records: it.c.records, Messages: it.c.messages}, nil
}

// add keeps a copy of r: the producer may reuse r and its slices.
func (it *groupItem) add(r *enrich.Record) {
	x := *r
	rec := *r.Record
	rec.Reasons = append([]aggregate.Reason(nil), rec.Reasons...)
	rec.DKIM = append([]aggregate.DKIMResult(nil), rec.DKIM...)
	rec.SPF = append([]aggregate.SPFResult(nil), rec.SPF...)
	x.Record = &rec
	it.recs = append(it.recs, x)
	it.c.records++
	it.c.messages += r.Count
	if r.Invalid != "" {
		it.c.invalid++
	}
	n := len(rec.SourceIP) + len(rec.HeaderFrom) + len(rec.Disposition) + len(rec.Invalid) + 64
	for _, d := range rec.DKIM {
		n += len(d.Domain) + len(d.Selector) + len(d.Result) + len(d.HumanResult)
	}
	for _, d := range rec.SPF {
		n += len(d.Domain) + len(d.Scope) + len(d.Result) + len(d.HumanResult)
	}
	it.bytes += int64(n)
}

// replay yields the kept records, then what next yields after them (the
// record r or error err that stopped the reading first, when set). The
// kept records were counted by add: replay is for the path of one report,
// which counts again.
func (it *groupItem) replay(err error, r *enrich.Record, next func() (*enrich.Record, error)) func() (*enrich.Record, error) {
	i := 0
	stopErr, stopRec := err, r
	if r != nil && r.Record != nil {
		stopRec = nil // kept by add
	}
	return func() (*enrich.Record, error) {
		if i < len(it.recs) {
			i++
			return &it.recs[i-1], nil
		}
		if stopErr == io.EOF {
			return nil, io.EOF // next already said so
		}
		if stopErr != nil || stopRec != nil {
			e, x := stopErr, stopRec
			stopErr, stopRec = nil, nil
			return x, e
		}
		return next()
	}
}

// submit adds it to l's pending group; false when the committer is closed.
func (c *committer) submit(l *lane, it *groupItem) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.doneReading()
		return false
	}
	l.pending = append(l.pending, it)
	l.records += it.c.records
	l.bytes += it.bytes
	l.mu.Unlock()
	c.doneReading()
	return true
}

// doneReading counts a writer out of the readers and wakes the lanes:
// when none reads any more, no report can join a pending group before it
// commits.
func (c *committer) doneReading() {
	c.readers.Add(-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lanes {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run commits l's groups until the committer closes.
func (c *committer) run(l *lane) {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		l.mu.Lock()
		group, at := l.ready(now, c.opt, c.readers.Load() > 0)
		l.mu.Unlock()
		if group != nil {
			c.commit(l, group)
			continue
		}
		var wait <-chan time.Time
		if !at.IsZero() {
			timer.Reset(at.Sub(now))
			wait = timer.C
		}
		select {
		case <-c.ctx.Done():
			l.mu.Lock()
			rest := l.pending
			l.pending, l.closed = nil, true
			l.mu.Unlock()
			for _, it := range rest {
				it.single = true
				close(it.done)
			}
			return
		case <-l.wake:
		case <-wait:
		}
		if wait != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// ready takes from l (its mu held) the group to commit at now, or tells
// when to look again (zero: once woken by a report or a writer done
// reading); reading tells whether a writer still reads a report that may
// join the group. See "Group commit" above.
func (l *lane) ready(now time.Time, opt GroupOptions, reading bool) (group []*groupItem, at time.Time) {
	if len(l.pending) == 0 {
		return nil, time.Time{}
	}
	if at := l.tat.Add(-opt.Burst); now.Before(at) {
		return nil, at
	}
	due := l.lastStart.Add(opt.Window)
	full := l.records >= opt.MaxRecords || l.bytes >= opt.MaxBytes
	if reading && !full && now.Before(due) {
		return nil, due
	}
	l.lastStart = now
	return l.take(opt), time.Time{}
}

// paced accounts (l.mu held) for the parts of the commit that began at
// l.lastStart: its time is paid for from the later of its start and tat.
func (l *lane) paced(opt GroupOptions, parts int) {
	if l.tat.Before(l.lastStart) {
		l.tat = l.lastStart
	}
	l.tat = l.tat.Add(opt.pace(parts))
}

// take removes from l's pending reports the oldest, up to opt.MaxRecords
// records and opt.MaxBytes bytes (at least one report), and returns them.
func (l *lane) take(opt GroupOptions) []*groupItem {
	n, records, bytes := 0, 0, int64(0)
	for ; n < len(l.pending); n++ {
		it := l.pending[n]
		if n > 0 && (records+it.c.records > opt.MaxRecords || bytes+it.bytes > opt.MaxBytes) {
			break
		}
		records += it.c.records
		bytes += it.bytes
	}
	group := l.pending[:n:n]
	l.pending = l.pending[n:]
	if len(l.pending) == 0 {
		l.pending = nil
	}
	l.records -= records
	l.bytes -= bytes
	return group
}

// commit commits a group taken by l.ready, paces l's next commit by the
// parts the group's INSERTs created, and tells the group's callers. On
// failure every report of the group takes the path of one report.
func (c *committer) commit(l *lane, group []*groupItem) {
	start := time.Now()
	parts, err := c.s.commitGroup(c.ctx, l.rt, group)
	l.mu.Lock()
	l.paced(c.opt, min(parts, 1)) // at most one part in any partition (see "Group commit")
	l.mu.Unlock()
	c.s.log.Debug("group commit", "reports", len(group), "parts", parts, "took", time.Since(start).Round(time.Millisecond), "err", err)
	if err != nil {
		c.s.log.Warn("group commit failed; writing its reports one by one", "reports", len(group), "err", err)
		for _, it := range group {
			it.single = true
		}
	}
	for _, it := range group {
		close(it.done)
	}
}

// commitGroup commits the reports of a group on rt (see "Group commit"
// above), setting each one's status, or single for those the path of one
// report is to write. It returns the parts its INSERTs created (partsOf),
// also when one of them failed.
func (s *Store) commitGroup(ctx context.Context, rt route, group []*groupItem) (parts int, err error) {
	release, err := s.claimNamed(ctx, rt, groupClaim, "group commit")
	if err != nil {
		return 0, err
	}
	defer release()
	claimed, err := s.claimedKeys(ctx, rt, group)
	if err != nil {
		return 0, err
	}
	stored, withRecords, err := s.groupStoredKeys(ctx, rt, group)
	if err != nil {
		return 0, err
	}
	var write []*groupItem
	first := map[string]bool{}
	for _, it := range group {
		switch {
		case claimed[it.key] || withRecords[it.key]:
			it.single = true
		case stored[it.key] || first[it.key]:
			it.status = StatusDuplicate
		default:
			first[it.key] = true
			write = append(write, it)
		}
	}
	if len(write) == 0 {
		return 0, nil
	}
	var p partsOf
	if err := s.insertGroup(ctx, rt, write, &p); err != nil {
		return p.count(), fmt.Errorf("%d reports: %w", len(write), err)
	}
	for _, it := range write {
		it.status = StatusStored
	}
	return p.count(), nil
}

// partsOf counts the parts a group's INSERTs create: one per distinct
// table and partition (every table a group writes is partitioned by the
// month of date_begin, store/schema/migrations), whether or not the INSERT
// succeeded.
type partsOf map[partKey]bool

// partKey is a table and a partition (a month) of it.
type partKey struct {
	table string
	month int
}

// add counts the partition of the report r in table.
func (p *partsOf) add(table string, r *reportFields) {
	if *p == nil {
		*p = partsOf{}
	}
	y, m, _ := r.begin.Date()
	(*p)[partKey{table, y*100 + int(m)}] = true
}

func (p partsOf) count() int { return len(p) }

// groupKeys lists the distinct keys of a group and their reports'
// policy domains and begin times, for queries that use the tables'
// sorting keys.
func groupKeys(group []*groupItem) (keys, domains []any, begins []any) {
	seen := map[string]bool{}
	seenDom := map[string]bool{}
	seenBegin := map[uint32]bool{}
	for _, it := range group {
		if !seen[it.key] {
			seen[it.key] = true
			keys = append(keys, it.key)
		}
		if d := policyDomain(it.h); !seenDom[d] {
			seenDom[d] = true
			domains = append(domains, d)
		}
		if b := unixSeconds(it.h.Begin); !seenBegin[b] {
			seenBegin[b] = true
			begins = append(begins, b)
		}
	}
	return keys, domains, begins
}

// placeholders is "?, ?, ..." for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// claimedKeys tells which keys of a group a writer on the path of one
// report holds the claim of (its claim table exists on rt).
func (s *Store) claimedKeys(ctx context.Context, rt route, group []*groupItem) (map[string]bool, error) {
	byName := map[string]string{}
	var names []any
	for _, it := range group {
		n := claimTable(it.key)
		if _, ok := byName[n]; !ok {
			byName[n] = it.key
			names = append(names, n)
		}
	}
	claimed := map[string]bool{}
	err := rt.eachRow(ctx, `SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN (`+placeholders(len(names))+`)`,
		names, func(scan func(...any) error) error {
			var n string
			if err := scan(&n); err != nil {
				return err
			}
			claimed[byName[n]] = true
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("group commit: reading the claims of its reports: %w", err)
	}
	return claimed, nil
}

// groupStoredKeys tells which keys of a group have a report row, and which
// have records but no report row, one query each.
func (s *Store) groupStoredKeys(ctx context.Context, rt route, group []*groupItem) (stored, withRecords map[string]bool, err error) {
	keys, domains, begins := groupKeys(group)
	where := `policy_domain IN (` + placeholders(len(domains)) + `) AND date_begin IN (` + placeholders(len(begins)) +
		`) AND report_key IN (` + placeholders(len(keys)) + `)`
	args := append(append(append([]any{}, domains...), toDateTimes(begins)...), keys...)
	read := func(table string) (map[string]bool, error) {
		m := map[string]bool{}
		err := rt.eachRow(ctx, `SELECT DISTINCT report_key FROM `+rt.table(table)+` WHERE `+where, args,
			func(scan func(...any) error) error {
				var k string
				err := scan(&k)
				m[k] = true
				return err
			})
		if err != nil {
			return nil, fmt.Errorf("group commit: looking for its reports in %s: %w", table, err)
		}
		return m, nil
	}
	if stored, err = read("aggregate_reports"); err != nil {
		return nil, nil, err
	}
	if withRecords, err = read("aggregate_records"); err != nil {
		return nil, nil, err
	}
	for k := range stored {
		delete(withRecords, k)
	}
	return stored, withRecords, nil
}

// toDateTimes turns unix seconds into time.Time values, which the driver
// binds as DateTime literals.
func toDateTimes(secs []any) []any {
	out := make([]any, len(secs))
	for i, x := range secs {
		out[i] = time.Unix(int64(x.(uint32)), 0).UTC()
	}
	return out
}

// groupReport is a report of a group as the INSERTs need it.
type groupReport struct {
	it     *groupItem
	rep    *reportFields
	cols   *recordColumns
	groups []sourceGroup
}

// insertGroup writes the records, rollups and report rows of the reports,
// one INSERT per table, in the order of a single report's commit.
func (s *Store) insertGroup(ctx context.Context, rt route, items []*groupItem, parts *partsOf) error {
	reps := make([]groupReport, len(items))
	for i, it := range items {
		h := it.h
		rep := &reportFields{key: it.key, id: h.ReportID, org: h.OrgName, domain: policyDomain(h),
			begin: h.Begin.UTC(), end: h.End.UTC(), dataKey: dataKeyOf(it.meta)}
		cols := newRecordColumns(len(it.recs))
		for j := range it.recs {
			cols.add(rep, uint32(j), &it.recs[j])
		}
		reps[i] = groupReport{it: it, rep: rep, cols: cols, groups: sourceGroupsOf(cols)}
	}
	records := 0
	b, err := rt.conn.PrepareBatch(ctx, "INSERT INTO "+rt.table("aggregate_records")+" ("+recordColumnList+")")
	if err != nil {
		return fmt.Errorf("inserting records into aggregate_records: %w", err)
	}
	for _, r := range reps {
		if err := appendColumns(b, r.cols.columns()); err != nil {
			b.Abort()
			return fmt.Errorf("inserting records of report %s into aggregate_records: %w", r.rep.key, err)
		}
		records += r.cols.len()
		parts.add("aggregate_records", r.rep)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("inserting %d records into aggregate_records: %w", records, err)
	}
	failpoint("after-records")
	steps := []struct {
		t       rollupTable
		columns string
		label   string
		fill    func(driver.Batch, groupReport) (int, error)
	}{
		{sourcesTable, sourcesTable.columns, sourcesTable.name, func(b driver.Batch, r groupReport) (int, error) {
			return appendSources(b, r.rep, r.cols, r.groups)
		}},
		{outcomesTable, outcomesSentColumns, outcomesTable.name, func(b driver.Batch, r groupReport) (int, error) {
			return appendOutcomes(b, r.rep, r.cols, r.groups)
		}},
		{pairBucketsTable, pairBucketsTable.columns, pairBucketsTable.name, func(b driver.Batch, r groupReport) (int, error) {
			return appendPairBuckets(b, r.rep, r.cols, r.groups)
		}},
		{rollupTableDef, rollupColumnList, "rollup", func(b driver.Batch, r groupReport) (int, error) {
			return appendRollupSums(b, r.rep, r.cols)
		}},
	}
	for _, st := range steps {
		err := sendRows(ctx, rt, st.t.name, st.columns, st.label, func(b driver.Batch) (int, error) {
			n := 0
			for _, r := range reps {
				k, err := st.fill(b, r)
				if err != nil {
					return 0, fmt.Errorf("report %s: %w", r.rep.key, err)
				}
				if k > 0 {
					parts.add(st.t.name, r.rep)
				}
				n += k
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		if st.t.after != "" {
			failpoint(st.t.after)
		}
	}
	failpoint("after-rollup")
	b, err = rt.conn.PrepareBatch(ctx, reportRowInsert(rt))
	if err != nil {
		return fmt.Errorf("writing report rows: %w", err)
	}
	for _, r := range reps {
		if err := b.Append(reportRow(r.it.h, r.it.key, r.it.meta, r.it.c)...); err != nil {
			b.Abort()
			return fmt.Errorf("writing the report row of %s: %w", r.rep.key, err)
		}
		parts.add("aggregate_reports", r.rep)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("writing %d report rows: %w", len(reps), err)
	}
	failpoint("after-report")
	return nil
}

// waitGroupClaim waits until no group commit holds rt's group claim,
// taking over the claim of a group writer that died (claimIsStale,
// claimOwnerDead). A writer on the path of one report calls it after it
// claimed its report: see "Group commit" above.
func (s *Store) waitGroupClaim(ctx context.Context, rt route) error {
	readErrors := 0
	for {
		var n uint64
		err := rt.conn.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?`, groupClaim).Scan(&n)
		if err == nil && n == 0 {
			return nil
		}
		if err == nil {
			var stale bool
			stale, err = s.claimIsStale(ctx, rt, groupClaim)
			if err == nil && (stale || s.claimOwnerDead(ctx, rt, groupClaim)) {
				s.takeOverClaim(ctx, rt, groupClaim)
				continue
			}
		}
		if err != nil {
			if readErrors++; readErrors >= claimReadRetries || ctx.Err() != nil {
				return fmt.Errorf("waiting for the group commit's claim: %w", err)
			}
		} else {
			readErrors = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(claimPoll):
		}
	}
}
