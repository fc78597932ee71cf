-- Exec
CREATE TABLE IF NOT EXISTS aggregate_reports (
    report_key          String,
    org_name            String,
    org_email           String,
    extra_contact_info  String,
    report_id           String,
    policy_domain       String,
    date_begin          DateTime('UTC'),
    date_end            DateTime('UTC'),
    adkim               Nullable(String),
    aspf                Nullable(String),
    p                   Nullable(String),
    sp                  Nullable(String),
    np                  Nullable(String),
    pct                 Nullable(String),
    fo                  Nullable(String),
    testing             Nullable(String),
    discovery_method    Nullable(String),
    schema              String,
    version             String,
    errors              Array(String),
    generator           String,
    record_count        UInt64,
    message_count       UInt64,
    invalid_records     UInt64,
    source              String,
    input_name          String,
    input_sha256        String,
    ingested_at         DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key);

-- Exec
CREATE TABLE IF NOT EXISTS aggregate_records (
    report_key            String,
    report_id             String,
    record_index          UInt32,
    org_name              String,
    policy_domain         String,
    date_begin            DateTime('UTC'),
    date_end              DateTime('UTC'),
    source_ip             String,
    message_count         UInt64,
    disposition           String,
    dmarc_dkim            String,
    dmarc_spf             String,
    override_types        Array(String),
    override_comments     Array(String),
    header_from           String,
    header_from_org       String,
    envelope_from         Nullable(String),
    envelope_to           Nullable(String),
    dkim_domains          Array(String),
    dkim_selectors        Array(String),
    dkim_results          Array(String),
    dkim_human_results    Array(String),
    spf_domains           Array(String),
    spf_scopes            Array(String),
    spf_results           Array(String),
    spf_human_results     Array(String),
    dkim_aligned_relaxed  UInt8,
    dkim_aligned_strict   UInt8,
    spf_aligned_relaxed   UInt8,
    spf_aligned_strict    UInt8,
    dmarc_pass            UInt8,
    record_error          String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key, record_index);

-- Exec
CREATE TABLE IF NOT EXISTS inputs (
    time         DateTime('UTC'),
    source       String,
    name         String,
    sha256       String,
    size         Int64,
    kind         String,
    status       String,
    reason_code  String,
    reason       String,
    report_keys  Array(String)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (time, sha256);
