-- Exec
ALTER TABLE aggregate_reports
    ADD COLUMN input_part String DEFAULT '';

-- Exec
ALTER TABLE failure_reports
    ADD COLUMN input_part String DEFAULT '';

-- Exec
ALTER TABLE tlsrpt_reports
    ADD COLUMN input_part String DEFAULT '';
