-- Exec
CREATE TABLE IF NOT EXISTS dns_records (
    domain      String,
    kind        String,
    name        String,
    value       String,
    previous    String,
    initial     UInt8,
    change      String,
    findings    String,
    errors      UInt32,
    warnings    UInt32,
    checked_at  DateTime('UTC'),
    checked_ns  UInt64
) ENGINE = MergeTree()
ORDER BY (domain, kind, checked_at);
