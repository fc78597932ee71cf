package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// groupWrite is one concurrent write of writeConcurrently.
type groupWrite struct {
	h   *aggregate.Header
	n   int
	res WriteResult
	err error
}

// writeConcurrently writes each report from a goroutine of its own.
func writeConcurrently(s *Store, writes []*groupWrite) {
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.res, w.err = s.WriteAggregate(context.Background(), w.h, meta, genRows(w.n, w.h.Domain))
		}()
	}
	wg.Wait()
}

func TestGroupCommitStoresEachOfManyConcurrentReportsOnce(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 40, Group: &GroupOptions{Window: 50 * time.Millisecond}})
	var writes []*groupWrite
	wantRecords := 0
	for i := range 12 {
		begin := jan2024.AddDate(0, i%3, i) // three months
		h := header("google.com", fmt.Sprintf("g%d", i), "example.com", begin)
		n := 1 + i*3 // 1..34 records: all small
		if i == 5 {
			n = 95 // larger than BatchRows: the path of one report
		}
		wantRecords += n
		for range 3 { // each report arrives three times
			writes = append(writes, &groupWrite{h: h, n: n})
		}
	}
	writeConcurrently(s, writes)
	stored := map[string]int{}
	for _, w := range writes {
		if w.err != nil {
			t.Fatalf("%s: %v", w.h.ReportID, w.err)
		}
		if w.res.Records != w.n || w.res.Messages != wantMessages(w.n) {
			t.Errorf("%s: %+v, want %d records, %d messages", w.h.ReportID, w.res, w.n, wantMessages(w.n))
		}
		if w.res.Status == StatusStored {
			stored[w.h.ReportID]++
		}
	}
	for i := range 12 {
		if id := fmt.Sprintf("g%d", i); stored[id] != 1 {
			t.Errorf("report %s stored by %d writers, want 1", id, stored[id])
		}
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != uint64(wantRecords) {
		t.Errorf("%d records, want %d", n, wantRecords)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 12 {
		t.Errorf("%d reports, want 12", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND startsWith(name, 'dmarcd_claim_')"); n != 0 {
		t.Errorf("%d claims left, want none", n)
	}
	checkRollup(t, s)
}

func TestGroupCommitCompletesAReportWhoseRecordsAreStored(t *testing.T) {
	s, _ := open(t, Options{Group: &GroupOptions{}})
	ctx := context.Background()
	h := header("google.com", "crash", "example.com", jan2024)
	// The first attempt stored the records and died before the report row.
	if _, err := s.insertRecords(ctx, s.plainRoute(), h, aggregate.Key(h), "", genRows(7, "example.com")); err != nil {
		t.Fatal(err)
	}
	res := write(t, s, h, genRows(7, "example.com"))
	if res.Status != StatusStored || res.Records != 7 || res.Messages != wantMessages(7) {
		t.Errorf("retry: %+v, want stored, 7 records, %d messages", res, wantMessages(7))
	}
	if again := write(t, s, h, genRows(7, "example.com")); again.Status != StatusDuplicate {
		t.Errorf("third write: %s, want duplicate", again.Status)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 7 {
		t.Errorf("%d records, want 7", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
		t.Errorf("%d reports, want 1", n)
	}
	checkRollup(t, s)
}

func TestGroupCommitLeavesAReportClaimedByAnotherWriterToIt(t *testing.T) {
	s, _ := open(t, Options{Group: &GroupOptions{}})
	ctx := context.Background()
	h := header("google.com", "claimed", "example.com", jan2024)
	// Another writer holds the report's claim: the group hands the report
	// to the path of one report, which waits for the claim.
	release, err := s.claim(ctx, s.plainRoute(), aggregate.Key(h))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan WriteResult, 1)
	go func() { done <- write(t, s, h, genRows(5, "example.com")) }()
	other := write(t, s, header("google.com", "free", "example.com", jan2024), genRows(5, "example.com"))
	if other.Status != StatusStored {
		t.Errorf("unclaimed report: %s, want stored", other.Status)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports WHERE report_id = 'claimed'"); n != 0 {
		t.Errorf("claimed report stored while another writer holds its claim")
	}
	release()
	if res := <-done; res.Status != StatusStored {
		t.Errorf("claimed report after the claim's release: %s, want stored", res.Status)
	}
	checkRollup(t, s)
}

func TestGroupCommitLogsEachOfManyInputsThatEndTogether(t *testing.T) {
	s, _ := open(t, Options{Group: &GroupOptions{Window: time.Second}})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.LogInput(context.Background(), InputRow{Source: "file", Name: fmt.Sprintf("in%d", i), Status: "stored"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := queryUint(t, s, "SELECT count() FROM inputs"); n != 20 {
		t.Errorf("%d inputs, want 20", n)
	}
}
