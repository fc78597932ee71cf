-- Exec
CREATE TABLE IF NOT EXISTS aggregate_pair_buckets (
    kind          UInt8,
    date_begin    DateTime('UTC'),
    bucket        UInt16,
    policy_domain String,
    report_key    String,
    report_count  UInt64,
    record_count  UInt64,
    message_count UInt64
) ENGINE = SummingMergeTree((report_count, record_count, message_count))
PARTITION BY toYYYYMM(date_begin)
ORDER BY (kind, date_begin, bucket, policy_domain, report_key);
