-- 0013_pair_buckets: aggregate_pair_buckets, the messages of the valid
-- records per UTC day and pair bucket, over all policy domains: the
-- Sources dashboard's "Sources by IP and From domain" table reads it to
-- rule out the buckets that cannot hold one of the top pairs without
-- scanning every row of aggregate_sources (dashboards/grafana/sources.json,
-- docs/dashboards.md). About 65,536 rows a day whatever the volume: 0.03 s
-- to read 30 days, where summing the same buckets from aggregate_sources
-- took 0.3 s over all domains of the 100M benchmark (docs/benchmarks.md).
--
-- A pair is (source IP, From domain); its bucket is the low 16 bits of
-- cityHash64(source_ip, header_from), that is toUInt16 of
-- aggregate_sources.source_pair. The sum of a bucket over the days of a
-- time range is at least the messages of every pair of the bucket in that
-- range, whatever the policy domain: an upper bound, which is all the panel
-- needs (it sums the pairs themselves from aggregate_sources).
--
-- Two kinds of rows, told apart by kind:
--   kind = 1, data: per (day, bucket), date_begin the UTC midnight of the
--     reports' begin, policy_domain '', report_key the data key of the
--     other rollups ('' or 'auth:fail', store.AuthFailKey);
--   kind = 0, marker: one per report (report_key set, report_count = 1,
--     date_begin and policy_domain the report's), as in every rollup table.
-- Written like aggregate_sources (0008) by the writer itself as a step of a
-- report's commit, completed by a retry, recomputed by `dmarcd rollup
-- rebuild` (store/rollup.go). A day's midnight falls in the month of the
-- day, so a report's data rows and marker share its partition.
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_pair_buckets"}}{{.OnCluster}} (
    kind          UInt8,
    date_begin    DateTime('UTC'),
    bucket        UInt16,
    policy_domain String,
    report_key    String,
    report_count  UInt64,
    record_count  UInt64,
    message_count UInt64
) ENGINE = {{.Engine "aggregate_pair_buckets" "SummingMergeTree" "(report_count, record_count, message_count)"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (kind, date_begin, bucket, policy_domain, report_key);
{{.Distributed "aggregate_pair_buckets"}}
