package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/failure"
)

// TestFailureReportWithoutArrivalDateStoredAtItsDate stores OpenDMARC's
// report, which has no Arrival-Date, at the report email's Date (not at
// 1970-01-01, where no dashboard looks), and a report without any date at
// the time received; arrival_date_source says which. A second copy of
// each, received later, is a duplicate.
func TestFailureReportWithoutArrivalDateStoredAtItsDate(t *testing.T) {
	s, _ := open(t, Options{})
	var open004 corpusFailure
	for _, c := range corpusFailures(t) {
		if filepath.Base(c.path) == "004.eml" {
			open004 = c
		}
	}
	if open004.r == nil {
		t.Fatal("corpus file stalwartlabs__mail-auth/forensic/004.eml missing")
	}
	undated := *open004.r
	undated.ReportDate, undated.SourceIP = time.Time{}, "192.0.2.9"
	undatedKey := failure.Key(&undated)

	received := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{received, received.Add(time.Hour)} {
		want := StatusStored
		if i > 0 {
			want = StatusDuplicate
		}
		for _, w := range []struct {
			key string
			r   *failure.Report
		}{{open004.key, open004.r}, {undatedKey, &undated}} {
			res, err := s.WriteFailure(context.Background(), w.key, enrich.Failure(w.r), InputMeta{Source: "file", InputName: "x.eml", ReceivedAt: at})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != want {
				t.Errorf("copy %d of %s: %s, want %s", i+1, w.key, res.Status, want)
			}
		}
	}
	check := func(key, wantDate, wantFrom string) {
		t.Helper()
		got := rowStrings(t, s, "SELECT toString(arrival_date), arrival_date_source, toString(count()) FROM failure_reports WHERE report_key = ? GROUP BY arrival_date, arrival_date_source", key)
		if got[0] != wantDate || got[1] != wantFrom || got[2] != "1" {
			t.Errorf("report %s: arrival_date %s from %q in %s rows, want %s from %q in 1", key, got[0], got[1], got[2], wantDate, wantFrom)
		}
	}
	// Date: Tue,  5 Oct 2021 17:37:02 +1300 (NZDT)
	check(open004.key, "2021-10-05 04:37:02", failure.ArrivalFromReportDate)
	check(undatedKey, "2026-03-01 12:00:00", failure.ArrivalFromReceived)
	if n := queryUint(t, s, "SELECT count() FROM failure_reports"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}
