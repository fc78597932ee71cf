-- Exec
CREATE TABLE IF NOT EXISTS failure_reports (
    report_key                 String,
    policy_domain              String,
    reporter                   String,
    reporter_domain            String,
    reporting_mta              String,
    feedback_type              String,
    user_agent                 String,
    version                    String,
    arf                        UInt8,
    incomplete                 UInt8,
    arrival_date               DateTime('UTC'),
    arrival_date_raw           String,
    source_ip                  String,
    source_port                String,
    incidents                  UInt64,
    reported_domain            Array(String),
    reported_uri               Array(String),
    auth_failure               Array(String),
    delivery_result            String,
    original_mail_from         String,
    original_mail_from_domain  String,
    original_rcpt_to           Array(String),
    original_envelope_id       String,
    dkim_domain                String,
    dkim_identity              String,
    dkim_selector              String,
    spf_dns                    Array(String),
    identity_alignment         Array(String),
    authentication_results     Array(String),
    original_from              String,
    original_from_domain       String,
    original_from_org          String,
    original_to                Array(String),
    original_subject           String,
    original_message_id        String,
    original_date              String,
    original_return_path       String,
    original_header_hash       String,
    original_headers_names     Array(String),
    original_headers_values    Array(String),
    has_body                   UInt8,
    body                       String,
    dkim_aligned_relaxed       UInt8,
    dkim_aligned_strict        UInt8,
    spf_aligned_relaxed        UInt8,
    spf_aligned_strict         UInt8,
    report_subject             String,
    source                     String,
    input_name                 String,
    input_sha256               String,
    ingested_at                DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(arrival_date)
ORDER BY (policy_domain, arrival_date, report_key);

-- Exec
CREATE TABLE IF NOT EXISTS tlsrpt_reports (
    report_key           String,
    organization_name    String,
    contact_info         String,
    report_id            String,
    date_begin           DateTime('UTC'),
    date_end             DateTime('UTC'),
    policy_count         UInt32,
    failure_count        UInt32,
    successful_sessions  UInt64,
    failed_sessions      UInt64,
    source               String,
    input_name           String,
    input_sha256         String,
    ingested_at          DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(date_begin)
ORDER BY (date_begin, report_key);

-- Exec
CREATE TABLE IF NOT EXISTS tlsrpt_policies (
    report_key           String,
    report_id            String,
    organization_name    String,
    date_begin           DateTime('UTC'),
    date_end             DateTime('UTC'),
    policy_index         UInt32,
    policy_type          String,
    policy_strings       Array(String),
    policy_domain        String,
    mx_hosts             Array(String),
    successful_sessions  UInt64,
    failed_sessions      UInt64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key, policy_index);

-- Exec
CREATE TABLE IF NOT EXISTS tlsrpt_failures (
    report_key              String,
    report_id               String,
    organization_name       String,
    date_begin              DateTime('UTC'),
    date_end                DateTime('UTC'),
    policy_index            UInt32,
    failure_index           UInt32,
    policy_type             String,
    policy_domain           String,
    result_type             String,
    sending_mta_ip          String,
    receiving_mx_hostname   String,
    receiving_mx_helo       String,
    receiving_ip            String,
    failed_session_count    UInt64,
    additional_information  String,
    failure_reason_code     String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key, policy_index, failure_index);
