-- Exec
ALTER TABLE aggregate_reports
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';

-- Exec
ALTER TABLE failure_reports
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';

-- Exec
ALTER TABLE tlsrpt_reports
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';
