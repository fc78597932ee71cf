-- Exec
CREATE TABLE IF NOT EXISTS aggregate_outcomes (
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
) ENGINE = SummingMergeTree((report_count, record_count, message_count, source_ip_state))
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass,
    dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict, override_types,
    dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);
