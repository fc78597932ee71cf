-- Exec
ALTER TABLE `dmarc`.`aggregate_reports_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';

-- Exec
DROP TABLE IF EXISTS `dmarc`.`aggregate_reports` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_reports` ON CLUSTER `dmarc_cluster` AS `dmarc`.`aggregate_reports_local` ENGINE = Distributed(dmarc_cluster, dmarc, aggregate_reports_local, sipHash64(report_key));

-- Exec
ALTER TABLE `dmarc`.`failure_reports_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';

-- Exec
DROP TABLE IF EXISTS `dmarc`.`failure_reports` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`failure_reports` ON CLUSTER `dmarc_cluster` AS `dmarc`.`failure_reports_local` ENGINE = Distributed(dmarc_cluster, dmarc, failure_reports_local, sipHash64(report_key));

-- Exec
ALTER TABLE `dmarc`.`tlsrpt_reports_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN auth_result String DEFAULT 'unverified',
    ADD COLUMN auth_detail String DEFAULT '';

-- Exec
DROP TABLE IF EXISTS `dmarc`.`tlsrpt_reports` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`tlsrpt_reports` ON CLUSTER `dmarc_cluster` AS `dmarc`.`tlsrpt_reports_local` ENGINE = Distributed(dmarc_cluster, dmarc, tlsrpt_reports_local, sipHash64(report_key));
