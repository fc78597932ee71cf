-- Exec
ALTER TABLE `dmarc`.`aggregate_outcomes_local` ON CLUSTER `dmarc_cluster`
    ADD COLUMN source_ipsMap.ip_hash Array(UInt32)
        DEFAULT if(source_ip = '', emptyArrayUInt32(), [toUInt32(cityHash64(source_ip))]),
    ADD COLUMN source_ipsMap.records Array(UInt64)
        DEFAULT if(source_ip = '', emptyArrayUInt64(), [toUInt64(1)]);

-- Exec
DROP TABLE IF EXISTS `dmarc`.`aggregate_outcomes` ON CLUSTER `dmarc_cluster`;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_outcomes` ON CLUSTER `dmarc_cluster` AS `dmarc`.`aggregate_outcomes_local` ENGINE = Distributed(dmarc_cluster, dmarc, aggregate_outcomes_local, sipHash64(report_key));
