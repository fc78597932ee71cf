-- 0006_dns_records: the DNS records the daemon's periodic `dmarcd check`
-- reads (internal/app/daemon/periodic.go), one row each time one changes, for
-- the dashboards' annotations ("DMARC record of example.com changed:
-- p=none → p=quarantine").
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').

-- One row per (domain, kind) the first time it is read and then only when
-- its name or value differs from the previous row's: a check that finds
-- the same record adds nothing, and a record that could not be read
-- (SERVFAIL, timeout) is not stored at all.
--
-- kind: dmarc, spf, dkim:SELECTOR (dkim:SELECTOR:D for a key of a
-- subdomain d=), report_auth:HOST (the authorisation record of an
-- external rua/ruf destination). name: where the record was found (the
-- DMARC record of a subdomain may be its parent's). value: the record's
-- text, '' when none is published. previous: the value of the row before
-- ('' for the first). initial: 1 for the first row of a (domain, kind),
-- which is no change. change: what changed, in words (for DMARC the tags,
-- e.g. "p=none → p=quarantine"). findings: the check's error and warning
-- findings about this record at that time, one per line, and their counts.
-- checked_ns: the check's time in Unix nanoseconds, which orders two rows
-- of one second (read the latest with argMax(..., checked_ns)).
--
-- Plain MergeTree, not partitioned (a handful of rows per domain and
-- year): no merge drops a row and `dmarcd prune` leaves it alone, so the
-- last stored value of every record is always there to compare with.
CREATE TABLE IF NOT EXISTS {{.Local "dns_records"}}{{.OnCluster}} (
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
) ENGINE = {{.Engine "dns_records" "MergeTree"}}
ORDER BY (domain, kind, checked_at);
{{.Distributed "dns_records"}}
