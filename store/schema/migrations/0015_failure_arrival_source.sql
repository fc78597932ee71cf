-- 0015_failure_arrival_source: where a failure report's arrival_date comes
-- from (failure.Report.Arrival, store/failure.go; docs/schema.md).
--
-- 'arrival-date': the report's Arrival-Date (or Received-Date); 'report-date':
-- the report email's Date, for reports without one (OpenDMARC writes none);
-- 'received': the time dmarcd received the report, when neither parses.
-- Rows stored before this migration read as '' (their arrival_date is the
-- Arrival-Date, or 1970-01-01 when there was none).
--
-- Same conventions as 0001_init: rendered with text/template (.Local, .Redistributed),
-- statements end with ";" at the end of a line, only what ClickHouse 18.16
-- has (no ADD COLUMN IF NOT EXISTS: one column, one ALTER).

ALTER TABLE {{.Local "failure_reports"}}{{.OnCluster}}
    ADD COLUMN arrival_date_source String DEFAULT '';
{{.Redistributed "failure_reports"}}
