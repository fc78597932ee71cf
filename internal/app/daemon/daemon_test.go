package daemon

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func readyz(t *testing.T, d *Daemon) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// TestReloadRestartsOnlyChangedSources: a reload that adds a source and
// changes another keeps the unchanged one running (same supervisor), and
// /readyz covers the new set.
func TestReloadRestartsOnlyChangedSources(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "00112233445566778899aabbccddeeff")
	dir := t.TempDir()
	cfg := wire.DefaultConfig()
	cfg.OwnedDomains = []string{"*"}
	cfg.ClickHouse.DSN = testenv.ClickHouse(t)
	cfg.HTTP.Listen = ""
	cfg.Sources = []config.Source{
		{Name: "a", Type: "spool", Path: filepath.Join(dir, "a"), Settle: config.Duration(time.Second)},
		{Name: "b", Type: "spool", Path: filepath.Join(dir, "b"), Settle: config.Duration(time.Second)},
	}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	waitReady := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := readyz(t, d)
			if code == 200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %d: %s", code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady()
	before := d.snapshot()

	next := cfg
	next.Sources = []config.Source{cfg.Sources[0],
		{Name: "b", Type: "spool", Path: filepath.Join(dir, "b2"), Settle: config.Duration(time.Second)},
		{Name: "c", Type: "spool", Path: filepath.Join(dir, "c")}}
	if err := d.Reload(next); err != nil {
		t.Fatal(err)
	}
	after := d.snapshot()
	if after["spool:a"] != before["spool:a"] {
		t.Error("unchanged source a was restarted")
	}
	if after["spool:b"] == before["spool:b"] || after["spool:c"] == nil {
		t.Errorf("changed b must be restarted and c started: %v", after)
	}
	waitReady()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, d); code != 503 || !strings.Contains(body, "clickhouse") {
		t.Errorf("after stop /readyz %d %q, want 503 naming clickhouse", code, body)
	}
}
