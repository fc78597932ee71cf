-- Exec
ALTER TABLE failure_reports
    ADD COLUMN arrival_date_source String DEFAULT '';
