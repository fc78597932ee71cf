-- 0007_rollups: aggregate_rollup, the records of aggregate_records summed,
-- what the dashboards and gauges read instead of every record
-- (docs/benchmarks.md). Two grains in one table, told apart by by_source:
--   by_source = 0: per (policy domain, report begin, header_from, reporter):
--     a few rows per report, for totals per domain and day;
--   by_source = 1: the same per source IP too, for per-source questions.
-- Read one grain at a time (WHERE by_source = 0, or = 1): each sums to the
-- records.
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').
--
-- Written by the writer itself as part of a report's commit (store/write.go,
-- store/rollup.go), never by a materialized view: views do not fire on the
-- ATTACH PARTITION of large reports, and a crash between the records and a
-- view's insert would leave the rollup short for good. Each report adds its
-- data rows (report_key '') and one marker row (report_key set,
-- report_count = 1,
-- every other sum 0) in one atomic step (one INSERT block, or a staging table
-- attached at once), after its records and before its report row, so that
-- once a report row exists the rollup holds exactly its records; a retry
-- that finds records but no marker writes the rollup from the stored
-- records. `dmarcd rollup rebuild` recomputes it per monthly partition.
--
-- SummingMergeTree: merges add up the data rows of one key across reports;
-- marker rows stay one per report (report_key is in the key, and
-- report_count is never 0, so no merge drops them). Queries always sum
-- with GROUP BY.
--
-- record_count, message_count and the *_messages sums count valid records
-- only (record_error = ''); invalid_records counts the others.
-- pass_messages: messages passing DMARC (dmarc_pass); dkim_relaxed_messages
-- .. spf_strict_messages: messages with that alignment; strict_pass_messages:
-- messages with a strict DKIM or SPF alignment. The names differ from the
-- aliases queries give their sums (messages, pass, ...): in ClickHouse an
-- alias named like a column replaces it in the other expressions.
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_rollup"}}{{.OnCluster}} (
    by_source             UInt8,
    policy_domain         String,
    date_begin            DateTime('UTC'),
    header_from           String,
    source_ip             String,
    org_name              String,
    report_key            String,
    report_count          UInt64,
    record_count          UInt64,
    message_count         UInt64,
    pass_messages         UInt64,
    dkim_relaxed_messages UInt64,
    dkim_strict_messages  UInt64,
    spf_relaxed_messages  UInt64,
    spf_strict_messages   UInt64,
    strict_pass_messages  UInt64,
    invalid_records       UInt64
) ENGINE = {{.Engine "aggregate_rollup" "SummingMergeTree" "(report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);
{{.Distributed "aggregate_rollup"}}
