-- Exec
ALTER TABLE `dmarc`.`failure_reports_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN arrival_date_source String DEFAULT '';

-- Exec
DROP TABLE IF EXISTS `dmarc`.`failure_reports` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`failure_reports` ON CLUSTER `dmarc_cluster` AS `dmarc`.`failure_reports_local` ENGINE = Distributed(dmarc_cluster, dmarc, failure_reports_local, sipHash64(report_key));
