package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// waitingStore reads each report's records, says so on read, then waits
// for commit to close, as a group commit waits for its group.
type waitingStore struct {
	metaStore
	read   chan string
	commit chan struct{}
}

func (s *waitingStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	res, err := readReport(h, next)
	if err != nil {
		return res, err
	}
	s.read <- h.ReportID
	<-s.commit
	return res, nil
}

func TestAGatedInputWaitingForItsCommitLetsTheNextOneBeRead(t *testing.T) {
	st := &waitingStore{read: make(chan string, 2), commit: make(chan struct{})}
	p := ingest.New(st, ingest.Options{Source: "file"})
	gate := ingest.NewGate(1)
	outs := make(chan ingest.Outcome, 2)
	for _, id := range []string{"gated-1", "gated-2"} {
		xml := strings.Replace(aggregateXML, "set-aside-1", id, 1)
		go func() { outs <- p.ProcessGated(context.Background(), id+".xml", strings.NewReader(xml), gate) }()
	}
	// Both reports are read while neither has committed: the one turn of
	// the gate is free while an input waits for the store.
	got := map[string]bool{<-st.read: true, <-st.read: true}
	if !got["gated-1"] || !got["gated-2"] {
		t.Fatalf("reports read before any commit: %v, want gated-1 and gated-2", got)
	}
	close(st.commit)
	for range 2 {
		if out := <-outs; out.Status != ingest.Stored || out.Records != 2 {
			t.Errorf("outcome %+v: want stored with 2 records", out)
		}
	}
}
