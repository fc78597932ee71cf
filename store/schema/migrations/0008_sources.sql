-- 0008_sources: aggregate_sources, the valid records of aggregate_records
-- summed per source and authentication outcome: what the per-source panels
-- (Sources, Policy readiness) and the readiness gauges read instead of every
-- record (docs/benchmarks.md). Two grains, told apart by by_source:
--   by_source = 1: per (policy domain, report begin, header_from, source IP,
--     every authentication column of the record): rows of the same source
--     and outcome merge across reporters and reports of one begin time;
--   by_source = 0: the same without the source IP (source_ip ''), for sums
--     that need no IP (the unauthenticated-messages gauge).
-- The columns keep the names they have in aggregate_records, so a query of
-- the records (record_error = '') reads the same here with
-- sum(message_count) for messages and sum(record_count) for records;
-- what is left out: the reporter (org_name), report ids, dispositions,
-- envelope and human-readable results, invalid records.
--
-- Written like aggregate_rollup (0007) by the writer itself as a step of a
-- report's commit: after the records, before the rollup and the report row,
-- one INSERT block (or a staging table attached at once) with the data rows
-- (report_key '') and one marker row (report_key set, report_count = 1,
-- by_source = 0). A retry that finds the records but no marker writes it from
-- the stored records; `dmarcd rollup rebuild` recomputes it with the rollup.
--
-- outcome: a hash of every column the readiness class depends on (the From
-- domain's organisational domain, DMARC pass, overrides, DKIM and SPF
-- arrays), filled by the server on every insert (DEFAULT). Queries classify
-- the few distinct outcomes of the grain without IP (by_source = 0) and
-- join them to the per-source rows by outcome, instead of evaluating the
-- class's array expressions on millions of rows (readiness.json).
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has (arrays in a sorting key are fine there),
-- times DateTime('UTC').
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_sources"}}{{.OnCluster}} (
    by_source            UInt8,
    policy_domain        String,
    date_begin           DateTime('UTC'),
    header_from          String,
    header_from_org      String,
    source_ip            String,
    dmarc_pass           UInt8,
    dkim_aligned_relaxed UInt8,
    dkim_aligned_strict  UInt8,
    spf_aligned_relaxed  UInt8,
    spf_aligned_strict   UInt8,
    override_types       Array(String),
    dkim_domains         Array(String),
    dkim_selectors       Array(String),
    dkim_results         Array(String),
    spf_domains          Array(String),
    spf_scopes           Array(String),
    spf_results          Array(String),
    report_key           String,
    report_count         UInt64,
    record_count         UInt64,
    message_count        UInt64,
    outcome              UInt64 DEFAULT cityHash64(header_from_org, dmarc_pass, override_types,
                             dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results)
) ENGINE = {{.Engine "aggregate_sources" "SummingMergeTree" "(report_count, record_count, message_count)"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass,
    dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict, override_types,
    dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);
{{.Distributed "aggregate_sources"}}
