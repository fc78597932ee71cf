-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`source_attribution_local` ON CLUSTER `dmarc_cluster` (
    ip             String,
    ptr            String,
    ptr_confirmed  UInt8,
    spf_domain     String,
    spf_mechanism  String,
    checked_at     DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dmarc/source_attribution', '{replica}', checked_at)
ORDER BY ip;

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`source_attribution` ON CLUSTER `dmarc_cluster` AS `dmarc`.`source_attribution_local` ENGINE = Distributed(dmarc_cluster, dmarc, source_attribution_local, sipHash64(ip));
