-- 0002_failure_tlsrpt: DMARC failure reports (RFC 6591, RFC 9991) and SMTP
-- TLS reports (RFC 8460).
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').

-- One row per failure report, written in one INSERT (see store/failure.go):
-- a failure report has no child rows. Stored as Redact left it: local parts
-- of addresses are tokens, the body is empty unless the operator kept it.
--
-- arrival_date is the report's Arrival-Date (or Received-Date) in UTC, and
-- 0 (1970-01-01 00:00:00) when the report has none or it does not parse;
-- arrival_date_raw keeps the text. It must be a value of the report itself
-- (not the ingest time): the writer finds an earlier copy of a report by
-- (arrival_date, report_key), so a report's row must always land in the same
-- partition.
--
-- policy_domain is original_from_domain, else the first reported_domain: the
-- domain whose mail failed. The alignment flags are recomputed by dmarcd
-- (store/failure.go, failureAlignment), not copied from Identity-Alignment,
-- whose meaning changed between RFC 7489 and RFC 9991.
CREATE TABLE IF NOT EXISTS {{.Local "failure_reports"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "failure_reports" "ReplacingMergeTree" "ingested_at"}}
PARTITION BY toYYYYMM(arrival_date)
ORDER BY (policy_domain, arrival_date, report_key);
{{.Distributed "failure_reports"}}

-- One row per TLS report, written after all its policies and failure details
-- (see store/tlsrpt.go): a report row means its child rows are all there.
-- ReplacingMergeTree collapses a report written twice by two racing
-- processes.
CREATE TABLE IF NOT EXISTS {{.Local "tlsrpt_reports"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "tlsrpt_reports" "ReplacingMergeTree" "ingested_at"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (date_begin, report_key);
{{.Distributed "tlsrpt_reports"}}

-- One row per policy of a TLS report. Plain MergeTree, sorting key unique per
-- policy (report_key, policy_index): merges never drop a row.
CREATE TABLE IF NOT EXISTS {{.Local "tlsrpt_policies"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "tlsrpt_policies" "MergeTree"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key, policy_index);
{{.Distributed "tlsrpt_policies"}}

-- One row per failure detail of a policy. Plain MergeTree, sorting key unique
-- per detail (report_key, policy_index, failure_index).
CREATE TABLE IF NOT EXISTS {{.Local "tlsrpt_failures"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "tlsrpt_failures" "MergeTree"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key, policy_index, failure_index);
{{.Distributed "tlsrpt_failures"}}
