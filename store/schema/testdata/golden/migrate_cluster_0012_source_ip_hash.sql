-- Exec
ALTER TABLE `dmarc`.`aggregate_sources_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN source_ip_hash UInt64 DEFAULT cityHash64(source_ip);

-- Exec
DROP TABLE IF EXISTS `dmarc`.`aggregate_sources` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_sources` ON CLUSTER `dmarc_cluster` AS `dmarc`.`aggregate_sources_local` ENGINE = Distributed(dmarc_cluster, dmarc, aggregate_sources_local, sipHash64(report_key));
