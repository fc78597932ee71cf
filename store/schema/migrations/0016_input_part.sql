-- 0016_input_part: where in its input each report was (ingest/pipeline.go,
-- docs/schema.md, "Provenance").
--
-- From this migration on, input_name is the input's own name, as in the
-- inputs table (a file path, s3://bucket/key#etag, an IMAP URL of RFC 5092
-- with the mail's UID), and input_part the path inside it: the MIME part
-- and archive member, with their file names ('' for a bare file). Rows
-- written before hold the innermost file name in input_name and '' here.
--
-- Same conventions as 0001_init: rendered with text/template (.Local, .Redistributed),
-- statements end with ";" at the end of a line, only what ClickHouse 18.16
-- has (no ADD COLUMN IF NOT EXISTS: one ALTER a table).

ALTER TABLE {{.Local "aggregate_reports"}}{{.OnCluster}}
    ADD COLUMN input_part String DEFAULT '';
{{.Redistributed "aggregate_reports"}}

ALTER TABLE {{.Local "failure_reports"}}{{.OnCluster}}
    ADD COLUMN input_part String DEFAULT '';
{{.Redistributed "failure_reports"}}

ALTER TABLE {{.Local "tlsrpt_reports"}}{{.OnCluster}}
    ADD COLUMN input_part String DEFAULT '';
{{.Redistributed "tlsrpt_reports"}}
