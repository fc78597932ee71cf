package store

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// pendingItem is a report of n records waiting in a lane, as submit
// leaves it.
func pendingItem(n int) *groupItem {
	it := &groupItem{done: make(chan struct{})}
	it.c.records = n
	it.bytes = int64(n) * 100
	return it
}

// laneWith is a lane holding items, as submit leaves it.
func laneWith(items ...*groupItem) *lane {
	l := &lane{}
	for _, it := range items {
		l.pending = append(l.pending, it)
		l.records += it.c.records
		l.bytes += it.bytes
	}
	return l
}

var paceOpt = GroupOptions{MaxRecords: 1000, MaxBytes: 1 << 30, Window: 200 * time.Millisecond, PartsPerSecond: 10}

func TestASingleReportOnAnIdleLaneIsCommittedAtOnce(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := laneWith(pendingItem(5))
	group, at := l.ready(now, paceOpt, false)
	if len(group) != 1 || !at.IsZero() {
		t.Fatalf("idle lane: %d reports to commit, look again at %v; want the report now", len(group), at)
	}
	if l.lastStart != now || len(l.pending) != 0 || l.records != 0 || l.bytes != 0 {
		t.Errorf("after taking the group: start %v, %d pending, %d records, %d bytes; want %v and nothing left", l.lastStart, len(l.pending), l.records, l.bytes, now)
	}
}

func TestAReportAfterACommitWhosePartsAreSpentWaitsNoLonger(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := laneWith(pendingItem(5))
	l.lastStart = t0
	l.paced(paceOpt, 6) // 600 ms: six commits' worth at 10/s
	if group, _ := l.ready(t0.Add(time.Second), paceOpt, true); len(group) != 1 {
		t.Errorf("a second after a commit of 6 parts: %d reports to commit, want 1", len(group))
	}
}

func TestAFullGroupWaitsForThePartsBudgetOfThePreviousCommit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := laneWith(pendingItem(600), pendingItem(600))
	l.lastStart = t0
	l.paced(paceOpt, 72) // 72 parts in a partition at 10/s
	if want := t0.Add(7200 * time.Millisecond); !l.tat.Equal(want) {
		t.Fatalf("pace of 72 parts a partition at 10/s ends at %v, want %v", l.tat, want)
	}
	for _, reading := range []bool{true, false} {
		group, at := l.ready(t0.Add(7*time.Second), paceOpt, reading)
		if group != nil || !at.Equal(l.tat) {
			t.Errorf("full group before its time (reading %v): %d reports, look again at %v; want none until %v", reading, len(group), at, l.tat)
		}
	}
	group, _ := l.ready(l.tat, paceOpt, true)
	if len(group) != 1 || group[0].c.records != 600 {
		t.Fatalf("at its time: %d reports, want the first (the second would pass MaxRecords)", len(group))
	}
	if len(l.pending) != 1 || l.records != 600 || l.bytes != 60000 {
		t.Errorf("left pending: %d reports, %d records, %d bytes; want 1, 600, 60000", len(l.pending), l.records, l.bytes)
	}
}

func TestAGroupStillBeingJoinedWaitsForItsWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := laneWith(pendingItem(5))
	l.lastStart, l.tat = t0, t0
	group, at := l.ready(t0.Add(50*time.Millisecond), paceOpt, true)
	if group != nil || !at.Equal(t0.Add(paceOpt.Window)) {
		t.Errorf("while writers read: %d reports, look again at %v; want none until the window ends", len(group), at)
	}
	if group, _ := l.ready(t0.Add(50*time.Millisecond), paceOpt, false); len(group) != 1 {
		t.Errorf("once no writer reads: %d reports, want 1", len(group))
	}
}

// groupOf reads the reports (begin, records) into group items, as
// writeAggregate does.
func groupOf(t *testing.T, reports ...struct {
	begin time.Time
	n     int
}) []*groupItem {
	t.Helper()
	var group []*groupItem
	for i, r := range reports {
		h := header("google.com", fmt.Sprintf("p%d", i), "example.com", r.begin)
		it := &groupItem{h: h, meta: meta, key: aggregate.Key(h), done: make(chan struct{})}
		next := genRows(r.n, "example.com")
		for {
			rec, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			it.add(rec)
		}
		group = append(group, it)
	}
	return group
}

func TestAGroupCommitCountsThePartsItsInsertsCreate(t *testing.T) {
	s, _ := open(t, Options{})
	group := groupOf(t, []struct {
		begin time.Time
		n     int
	}{{jan2024, 10}, {jan2024.AddDate(0, 0, 3), 20}, {jan2024.AddDate(0, 1, 0), 5}}...)
	parts, err := s.commitGroup(context.Background(), s.plainRoute(), group)
	if err != nil {
		t.Fatal(err)
	}
	// Fresh tables: each part the INSERTs created is still there alone in
	// its partition.
	made := queryUint(t, s, `SELECT count() FROM system.parts WHERE database = currentDatabase() AND active
		AND table IN ('aggregate_records', 'aggregate_sources', 'aggregate_outcomes', 'aggregate_pair_buckets', 'aggregate_rollup', 'aggregate_reports')`)
	if parts != int(made) || parts != 12 {
		t.Errorf("commit counted %d parts, the server holds %d; want 12 (6 tables x 2 months)", parts, made)
	}
	if again, err := s.commitGroup(context.Background(), s.plainRoute(), groupOf(t, []struct {
		begin time.Time
		n     int
	}{{jan2024, 10}}...)); err != nil || again != 0 {
		t.Errorf("a group of duplicates counted %d parts (err %v), want 0", again, err)
	}
}

func TestAReportOnAnIdleStoreIsCommittedAtOnceAndPacesTheNext(t *testing.T) {
	s, _ := open(t, Options{Group: &GroupOptions{PartsPerSecond: 1, Burst: time.Nanosecond}})
	if res := write(t, s, header("google.com", "idle", "example.com", jan2024), genRows(5, "example.com")); res.Status != StatusStored {
		t.Fatalf("single report: %s, want stored", res.Status)
	}
	l := s.group.laneOf("")
	l.mu.Lock()
	defer l.mu.Unlock()
	if want := l.lastStart.Add(time.Second); !l.tat.Equal(want) {
		t.Errorf("parts paid for at %v, want %v (one part in each of its 6 tables' partition at 1/s after the commit's start)", l.tat, want)
	}
}

func TestAnIdleLaneSavesCreditForABurstOfCommits(t *testing.T) {
	opt := paceOpt
	opt.Burst = 10 * time.Second // 100 parts a partition at 10/s
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := laneWith(pendingItem(5))
	now := t0
	for i, parts := range []int{60, 30} { // 9 s of parts: within the credit
		group, at := l.ready(now, opt, false)
		if len(group) != 1 {
			t.Fatalf("commit %d at %v: %d reports (look again at %v), want 1 at once", i+1, now, len(group), at)
		}
		l.paced(opt, parts)
		l.pending, l.records, l.bytes = []*groupItem{pendingItem(5)}, 5, 500
		now = now.Add(100 * time.Millisecond)
	}
	l.paced(opt, 20) // the credit is spent: 11 s of parts begun by t0 + 100 ms
	if group, at := l.ready(now, opt, false); group != nil || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("after the credit: %d reports, look again at %v; want none until %v", len(group), at, t0.Add(time.Second))
	}
}
