-- 0003_source_attribution: who a source IP is, found off the ingest path by
-- internal/product/attrib (reverse DNS with forward confirmation, and the mechanism
-- of the domain's own SPF record that authorises the IP).
--
-- Same conventions as 0001_init: rendered with text/template (.Local,
-- .Engine, .Distributed), statements end with ";" at the end of a line, only types and
-- features ClickHouse 18.16 has, times DateTime('UTC').

-- One row per IP; a new check of the IP replaces the row (ReplacingMergeTree
-- by ip, latest checked_at wins). Read with FINAL or argMax(..., checked_at).
-- ptr is the first PTR name, ptr_confirmed 1 when that name's A/AAAA
-- records contain the IP. spf_domain is the domain whose SPF record
-- authorises the IP and spf_mechanism its top-level term that does,
-- e.g. "include:amazonses.com"; both "" when none does.
CREATE TABLE IF NOT EXISTS {{.Local "source_attribution"}}{{.OnCluster}} (
    ip             String,
    ptr            String,
    ptr_confirmed  UInt8,
    spf_domain     String,
    spf_mechanism  String,
    checked_at     DateTime('UTC')
) ENGINE = {{.Engine "source_attribution" "ReplacingMergeTree" "checked_at"}}
ORDER BY ip;
{{.Distributed "source_attribution"}}
