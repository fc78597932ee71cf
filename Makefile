# dmarcd — see README.md. Every target works on a fresh Debian machine with Go;
# servers (ClickHouse, ...) are installed with apt-get when missing (as root)
# and run on loopback in temporary folders.
GO       ?= go
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 2m
DEMO_DIR ?= .demo

.PHONY: all build test test-unit test-long test-repeat bench bench-ingest bench-daemon bench-hostile bench-throughput bench-queries fuzz demo demo-stop vet fmt dashboard-pictures clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/dmarcd ./cmd/dmarcd
	$(GO) build -o $(BIN)/dmarcd-gen ./cmd/dmarcd-gen

# Every test, integration included, against a real ClickHouse started for the
# run (18.16) and shared by every package, and the ClickHouse 26.x engine
# (libchdb, scripts/chdb.sh) that internal/testkit/compat checks the schema and
# the queries on. Packages run TESTP at a time (go test -p; 2, the cores of the
# smallest supported machine). The long soaks are skipped here: make test-long.
TESTP ?= 2
test: vet
	lib=$$(scripts/chdb.sh ensure) && export DMARCD_TEST_CHDB_LIB=$${lib#CHDB_LIB=} && \
	scripts/clickhouse.sh run -- $(GO) test -count=1 -p $(TESTP) -timeout 30m ./...

# The long soaks only (testenv.Long: DMARCD_TEST_LONG=1 runs them; they never
# skip here): the tests LONG_TESTS names. .ci/run runs this after make test
# when time allows. internal/testkit/testenv checks that LONG_TESTS names
# every test that calls testenv.Long.
LONG_TESTS = ^(TestIngestSurvivesKill9|TestIngestS3SurvivesKill9)$$
test-long:
	scripts/clickhouse.sh run -- env DMARCD_TEST_LONG=1 \
	$(GO) test -count=1 -timeout 30m -run '$(LONG_TESTS)' ./...

# Unit tests only: -short, and DMARCD_TEST_NO_SERVERS=1 makes a test that
# would start a server (ClickHouse, Dovecot, versitygw, chdb, promtool) fail.
test-unit:
	DMARCD_TEST_NO_SERVERS=1 $(GO) test -count=1 -short ./...

# The tests that once failed on a loaded machine, REPEAT times each in a row
# (scripts/repeat-flaky.sh): per-run seconds, a summary, stops at a failure.
REPEAT ?= 20
test-repeat:
	scripts/repeat-flaky.sh $(REPEAT)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Benchmarks print figures and never fail on speed. See docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./parse/aggregate/
	scripts/clickhouse.sh run -- scripts/bench-ingest.sh
	scripts/clickhouse.sh run -- scripts/bench-daemon.sh
	scripts/clickhouse.sh run -- scripts/bench-hostile.sh
	scripts/clickhouse.sh run -- scripts/bench-throughput.sh

bench-ingest:
	scripts/clickhouse.sh run -- scripts/bench-ingest.sh

# dmarcd serve working through a 10,000-mail backlog in a local Dovecot.
bench-daemon:
	scripts/clickhouse.sh run -- scripts/bench-daemon.sh

# Every attack of internal/testkit/hostile at up to 64 MiB of input, four at once,
# with good reports ingested beside them: wall time, CPU and peak RSS each.
bench-hostile:
	scripts/clickhouse.sh run -- scripts/bench-hostile.sh

# Issue 19's figures, each beside the raw Native insert of the same rows: 2,000
# small reports from files, a 2,000-mail IMAP backlog, a 1,000,000-record
# report, a restart after SIGKILL (sizes: BENCH_* in the script; ~10 minutes).
bench-throughput:
	scripts/clickhouse.sh run -- scripts/bench-throughput.sh

# p50/p95 of every dashboard and gauge query on 100,000,000 generated records
# (about 15 minutes to load; needs ~5 GB of disk). Not part of make bench.
bench-queries:
	scripts/clickhouse.sh run -- scripts/bench-queries.sh

# Runs every fuzz target for FUZZTIME each (seed corpora also run in make test).
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

demo: build
	scripts/demo.sh $(DEMO_DIR)

demo-stop:
	-[ -f $(DEMO_DIR)/dmarcd.pid ] && kill -TERM $$(cat $(DEMO_DIR)/dmarcd.pid) 2>/dev/null; rm -f $(DEMO_DIR)/dmarcd.pid
	scripts/clickhouse.sh stop $(DEMO_DIR)/clickhouse

# docs/img/dashboard-*.svg: the layout of each dashboard in dashboards/grafana,
# drawn from its JSON (dashboards/layout_test.go fails when one is out of date).
dashboard-pictures:
	$(GO) run ./internal/tools/dashlayout

clean:
	rm -rf $(BIN)
