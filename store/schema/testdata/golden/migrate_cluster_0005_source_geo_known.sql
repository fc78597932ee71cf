-- Exec
ALTER TABLE `dmarc`.`source_attribution_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN country          String,
    ADD COLUMN asn              UInt32,
    ADD COLUMN as_org           String,
    ADD COLUMN spf_includes     Array(String),
    ADD COLUMN known_source     String,
    ADD COLUMN known_authorised UInt8;

-- Exec
DROP TABLE IF EXISTS `dmarc`.`source_attribution` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`source_attribution` ON CLUSTER `dmarc_cluster` AS `dmarc`.`source_attribution_local` ENGINE = Distributed(dmarc_cluster, dmarc, source_attribution_local, sipHash64(ip));
