-- 0004_report_auth: how the mail that carried each report authenticated on
-- arrival (ingest/auth.go; docs/readiness.md, "Trusting the reports").
--
-- auth_result is 'pass' (a DKIM signature aligned with the mail's From
-- domain verified), 'fail' (signatures that do not verify, or a From domain
-- with p=quarantine/reject and no aligned pass: likely forged) or
-- 'unverified' (a bare file, no signature and no enforcing policy, or a DNS
-- failure). auth_detail says why, e.g. "dkim=pass d=google.com s=20230601".
-- Reports stored before this migration read as 'unverified'.
--
-- Same conventions as 0001_init: rendered with text/template (.Local, .Redistributed),
-- statements end with ";" at the end of a line, only what ClickHouse 18.16
-- has. 18.16 has no ADD COLUMN IF NOT EXISTS: each table gets both columns
-- in one ALTER, which applies whole or not at all.

ALTER TABLE {{.Local "aggregate_reports"}}{{.OnCluster}}
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';
{{.Redistributed "aggregate_reports"}}

ALTER TABLE {{.Local "failure_reports"}}{{.OnCluster}}
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';
{{.Redistributed "failure_reports"}}

ALTER TABLE {{.Local "tlsrpt_reports"}}{{.OnCluster}}
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';
{{.Redistributed "tlsrpt_reports"}}
