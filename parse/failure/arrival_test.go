package failure

import (
	"strings"
	"testing"
	"time"
)

// TestArrivalFallsBackToTheReportDateThenToTheTimeReceived parses
// OpenDMARC's report, which has no Arrival-Date: its arrival is the report
// email's Date, and said so; a report with neither date takes the time
// received; an Arrival-Date wins over both.
func TestArrivalFallsBackToTheReportDateThenToTheTimeReceived(t *testing.T) {
	received := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	open := parseFile(t, "stalwartlabs__mail-auth/forensic/004.eml", Options{})
	if !open.ArrivalDate.IsZero() {
		t.Fatalf("004.eml has no Arrival-Date, parsed %v", open.ArrivalDate)
	}
	// Date: Tue,  5 Oct 2021 17:37:02 +1300 (NZDT)
	if at, src := open.Arrival(received); at.Unix() != 1633408622 || src != ArrivalFromReportDate {
		t.Errorf("OpenDMARC report: arrival %v from %q, want 2021-10-05T04:37:02Z from %q", at, src, ArrivalFromReportDate)
	}

	noDate, err := Parse(strings.NewReader(arf("multipart/report", "",
		"Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\nAuth-Failure: dmarc\r\n",
		"text/rfc822-headers", sampleOriginal)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if at, src := noDate.Arrival(received); !at.Equal(received) || src != ArrivalFromReceived {
		t.Errorf("no date at all: arrival %v from %q, want %v from %q", at, src, received, ArrivalFromReceived)
	}

	for _, date := range []string{"Date: not a date\r\n", "Date: Mon, 1 Jan 1990 00:00:00 +0000\r\n"} {
		bad, err := Parse(strings.NewReader(date+arf("multipart/report", "",
			"Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\nAuth-Failure: dmarc\r\n",
			"text/rfc822-headers", sampleOriginal)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, src := bad.Arrival(received); src != ArrivalFromReceived {
			t.Errorf("%q: arrival from %q, want %q", strings.TrimSpace(date), src, ArrivalFromReceived)
		}
	}

	both, err := Parse(strings.NewReader("Date: Wed, 1 May 2019 00:00:00 +0000\r\n"+arf("multipart/report", "",
		"Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\nAuth-Failure: dmarc\r\nArrival-Date: Tue, 30 Apr 2019 02:09:00 +0000\r\n",
		"text/rfc822-headers", sampleOriginal)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if at, src := both.Arrival(received); at.Unix() != 1556590140 || src != ArrivalFromField {
		t.Errorf("Arrival-Date and Date: arrival %v from %q, want the Arrival-Date", at, src)
	}
}
