package gauges

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seed ingests a generated scenario (gen.Generate) through the pipeline and
// returns its files.
func seed(t *testing.T, st *store.Store, opt gen.Options) []gen.File {
	t.Helper()
	files, err := gen.Generate(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("test key")}})
	for _, f := range files {
		o := p.Process(context.Background(), f.Name, bytes.NewReader(f.Data))
		if o.Status != ingest.Stored && o.Status != ingest.Duplicate {
			t.Fatalf("%s: %s %s", f.Name, o.Status, o.Reason)
		}
	}
	return files
}

// values gathers the collector and returns each sample as "name{l=v,...}".
func values(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName()
			for _, l := range m.Label {
				k += fmt.Sprintf("{%s=%s}", l.GetName(), l.GetValue())
			}
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.Counter.GetValue()
			default:
				v = m.Gauge.GetValue()
			}
			out[k] = v
		}
	}
	return out
}

// TestGaugesMatchGeneratedTruthPerWindow seeds 14 generated days and checks
// the 1, 7 and 30 day windows ending two days before "now" against the
// generator's truth, and the unauthenticated and strict figures against the
// readiness query over the same window.
func TestGaugesMatchGeneratedTruthPerWindow(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.ClickHouse(t), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	files := seed(t, st, gen.Options{Domain: "example.com", Days: 14, Seed: 7, Start: start})

	g := New(Reader{Q: st}, 0, -1, nil)
	now := start.AddDate(0, 0, 16).Add(9 * time.Hour) // 2025-03-19 09:00
	g.now = func() time.Time { return now }
	before := values(t, g)
	if before["dmarcd_clickhouse_up"] != 0 || len(before) != 2 {
		t.Errorf("before the first update: got %v, want only dmarcd_clickhouse_up=0 and the error counter", before)
	}
	if err := g.Update(ctx); err != nil {
		t.Fatal(err)
	}
	got := values(t, g)
	end := WindowEnd(now, DefaultLag)
	if want := time.Date(2025, 3, 17, 0, 0, 0, 0, time.UTC); !end.Equal(want) {
		t.Fatalf("WindowEnd = %v, want %v", end, want)
	}
	for _, w := range Windows {
		since := end.AddDate(0, 0, -w.Days)
		var msgs, pass uint64
		seen := map[[2]string]bool{}
		for _, f := range files {
			for _, rt := range f.Reports {
				k := [2]string{rt.Reporter, rt.ReportID}
				if seen[k] || rt.Begin.Before(since) || !rt.Begin.Before(end) {
					continue
				}
				seen[k] = true
				msgs += rt.Messages
				for _, d := range rt.PerDomain {
					pass += d.DMARCPassRelaxed
				}
			}
		}
		if msgs == 0 {
			t.Fatalf("window %s: no generated messages: the test's dates are wrong", w.Name)
		}
		l := func(name string) string { return fmt.Sprintf("%s{domain=example.com}{window=%s}", name, w.Name) }
		if v := got[l("dmarc_messages")]; v != float64(msgs) {
			t.Errorf("%s: %v, want %d", l("dmarc_messages"), v, msgs)
		}
		if v, want := got[l("dmarc_pass_ratio")], float64(pass)/float64(msgs); math.Abs(v-want) > 1e-9 {
			t.Errorf("%s: %v, want %v", l("dmarc_pass_ratio"), v, want)
		}
		if v := got[fmt.Sprintf("dmarc_would_block_messages{domain=example.com}{policy=reject}{window=%s}", w.Name)]; v != float64(msgs-pass) {
			t.Errorf("would block (reject) %s: %v, want %d", w.Name, v, msgs-pass)
		}
		rs, err := readiness.ReadSources(ctx, st, since, end, readiness.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var unauth, strict uint64
		for _, r := range rs {
			if r.Class == readiness.ClassUnauthenticated {
				unauth += r.Messages
			}
			strict += r.PassSS
		}
		if v := got[l("dmarc_unauthenticated_messages")]; v != float64(unauth) || unauth == 0 {
			t.Errorf("%s: %v, want %d (readiness), not 0", l("dmarc_unauthenticated_messages"), v, unauth)
		}
		if v, want := got[l("dmarc_strict_pass_ratio")], float64(strict)/float64(msgs); math.Abs(v-want) > 1e-9 {
			t.Errorf("%s: %v, want %v", l("dmarc_strict_pass_ratio"), v, want)
		}
	}
	if got["dmarcd_clickhouse_up"] != 1 || got["dmarc_gauges_last_update_timestamp_seconds"] != float64(now.Unix()) {
		t.Errorf("health: up %v, last update %v", got["dmarcd_clickhouse_up"], got["dmarc_gauges_last_update_timestamp_seconds"])
	}
	if v := got["dmarc_domain_last_report_timestamp_seconds{domain=example.com}"]; v < float64(start.AddDate(0, 0, 13).Unix()) || v > float64(now.Unix()) {
		t.Errorf("last report of example.com: %v", time.Unix(int64(v), 0).UTC())
	}
	orgs := 0
	for k := range got {
		if len(k) > len("dmarc_last_report_timestamp_seconds{") && k[:len("dmarc_last_report_timestamp_seconds{")] == "dmarc_last_report_timestamp_seconds{" {
			orgs++
		}
	}
	if orgs < 3 {
		t.Errorf("dmarc_last_report_timestamp_seconds: %d orgs, want several", orgs)
	}

	// ClickHouse gone: up drops to 0, the previous values stay.
	st.Close()
	if err := g.Update(ctx); err == nil {
		t.Fatal("Update after Close: no error")
	}
	after := values(t, g)
	if after["dmarcd_clickhouse_up"] != 0 || after["dmarc_gauges_update_errors_total"] != 1 ||
		after["dmarc_messages{domain=example.com}{window=30d}"] != got["dmarc_messages{domain=example.com}{window=30d}"] {
		t.Errorf("after a failed update: up %v, errors %v, messages %v", after["dmarcd_clickhouse_up"],
			after["dmarc_gauges_update_errors_total"], after["dmarc_messages{domain=example.com}{window=30d}"])
	}
}

// TestBoundDomainsFoldsTheRestIntoOther pins the label bound.
func TestBoundDomainsFoldsTheRestIntoOther(t *testing.T) {
	var l []DomainGauges
	for i := 0; i < MaxLabels+5; i++ {
		l = append(l, DomainGauges{Domain: fmt.Sprintf("d%03d.example", i), Messages: uint64(1000 - i), DMARCPass: 1})
	}
	out := labelDomains(l, (&Gauges{}).labeler(l))
	if len(out) != MaxLabels+1 || out[MaxLabels].Domain != Other || out[MaxLabels].DMARCPass != 5 {
		t.Fatalf("got %d entries, last %+v", len(out), out[len(out)-1])
	}
	var lr []LastReport
	for i := 0; i < MaxLabels+2; i++ {
		lr = append(lr, LastReport{Name: fmt.Sprint(i), End: time.Unix(int64(i), 0)})
	}
	b := boundLast(lr)
	if len(b) != MaxLabels+1 || b[MaxLabels].Name != Other || b[MaxLabels].End.Unix() != MaxLabels+1 {
		t.Fatalf("boundLast: %+v", b[len(b)-1])
	}
}
