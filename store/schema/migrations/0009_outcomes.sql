-- 0009_outcomes: aggregate_outcomes, the valid records of aggregate_records
-- summed per (policy domain, report begin, header_from, every authentication
-- column of the record), with the distinct source IPs of each row kept as a
-- sketch (source_ip_state, the state of uniq): what the per-outcome panels (Policy
-- readiness, DKIM and SPF tables) and the unauthenticated-messages gauge read,
-- so that "how many sources" never reads the per-source rows
-- (docs/benchmarks.md). It replaces the grain without IP of
-- aggregate_sources (by_source = 0), which is no longer written.
--
-- The columns keep the names they have in aggregate_records, so a question
-- of the records (record_error = '') reads the same here with
-- sum(message_count) for messages, sum(record_count) for records and
-- uniqMerge(source_ip_state) for uniq(source_ip).
--
-- source_ip is not in the key: it is one source IP of the row (any, after
-- merges), and what source_ip_state is computed from when an INSERT leaves it out
-- (DEFAULT: the sketch of that one IP, or empty for ''). The writer sends a
-- report's rows from Go as one row per (outcome, IP), which merges sum into
-- one row per outcome with the sketch of all its IPs; INSERT ... SELECTs from
-- records (large reports, retries, rebuilds) send uniqState(source_ip)
-- itself. source_ip_state is in the summed columns: for a column of type
-- AggregateFunction SummingMergeTree merges the states (a column left out
-- of the list would keep one row's state).
--
-- Written like aggregate_sources (0008) by the writer itself as a step of a
-- report's commit, after aggregate_sources and before aggregate_rollup: the
-- data rows (report_key '') and one marker row (report_key set, report_count
-- = 1) in one INSERT block, or a staging table attached at once. A retry that
-- finds the records but no marker writes it from the stored records;
-- `dmarcd rollup rebuild` recomputes it with the other rollups, and until
-- then `dmarcd migrate` names the months of records it lacks.
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_outcomes"}}{{.OnCluster}} (
    policy_domain        String,
    date_begin           DateTime('UTC'),
    header_from          String,
    header_from_org      String,
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
    source_ip            String,
    source_ip_state      AggregateFunction(uniq, String) DEFAULT arrayReduce('uniqState', arrayFilter(x -> x != '', [source_ip]))
) ENGINE = {{.Engine "aggregate_outcomes" "SummingMergeTree" "(report_count, record_count, message_count, source_ip_state)"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass,
    dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict, override_types,
    dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);
{{.Distributed "aggregate_outcomes"}}
