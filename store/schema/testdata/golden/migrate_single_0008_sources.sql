-- Exec
CREATE TABLE IF NOT EXISTS aggregate_sources (
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
) ENGINE = SummingMergeTree((report_count, record_count, message_count))
PARTITION BY toYYYYMM(date_begin)
ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass,
    dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict, override_types,
    dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);
