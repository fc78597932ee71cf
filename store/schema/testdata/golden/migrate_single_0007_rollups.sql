-- Exec
CREATE TABLE IF NOT EXISTS aggregate_rollup (
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
) ENGINE = SummingMergeTree((report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records))
PARTITION BY toYYYYMM(date_begin)
ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);
