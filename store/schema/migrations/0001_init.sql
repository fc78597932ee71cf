-- 0001_init: aggregate reports, their records, and the log of inputs.
--
-- Rendered with text/template (store/schema/render.go) from the same text for
-- a single server and for a cluster: .Local "t" names the table that holds
-- the rows (t itself, or a cluster's Replicated `db`.`t_local`), .OnCluster
-- is "" or " ON CLUSTER `name`", .Engine "t" ... is a plain engine or its
-- Replicated form, and .Distributed "t" after a CREATE (.Redistributed "t"
-- after an ALTER of columns) is nothing, or the cluster's Distributed table
-- t over the t_local tables. Statements end with ";" at the end of a line.
--
-- Runs on ClickHouse 18.16 and current releases: no LowCardinality, Map,
-- DateTime64, TTL, IPv4/IPv6. Times are DateTime('UTC'), so toYYYYMM (the
-- monthly partition) is the UTC month whatever the server's time zone.
--
-- Policy fields that a report may omit are Nullable(String): NULL means
-- "absent" (RFC 9990 §3.1.1.5: its default applies), e.g.
-- `ifNull(adkim, 'r')`, `p IS NULL`.

-- One row per report. Written after all its records (see store/write.go), so
-- a report row means the report's records are all there. ReplacingMergeTree
-- collapses a report written twice by two racing processes; in one process the
-- writer never writes a report row twice.
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_reports"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "aggregate_reports" "ReplacingMergeTree" "ingested_at"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY (policy_domain, date_begin, report_key);
{{.Distributed "aggregate_reports"}}

-- One row per record. Plain MergeTree: merges never drop a row, and the
-- sorting key is unique per record anyway (report_key, record_index).
CREATE TABLE IF NOT EXISTS {{.Local "aggregate_records"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "aggregate_records" "MergeTree"}}
PARTITION BY toYYYYMM(date_begin)
ORDER BY {{.RecordsOrderBy}};
{{.Distributed "aggregate_records"}}

-- One row per input (a message, an object, a file) and what became of it.
CREATE TABLE IF NOT EXISTS {{.Local "inputs"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "inputs" "MergeTree"}}
PARTITION BY toYYYYMM(time)
ORDER BY (time, sha256);
{{.Distributed "inputs"}}
