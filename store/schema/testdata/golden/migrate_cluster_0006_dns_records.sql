-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`dns_records_local` ON CLUSTER `dmarc_cluster` (
    domain      String,
    kind        String,
    name        String,
    value       String,
    previous    String,
    initial     UInt8,
    change      String,
    findings    String,
    errors      UInt32,
    warnings    UInt32,
    checked_at  DateTime('UTC'),
    checked_ns  UInt64
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/dmarc/dns_records', '{replica}')
ORDER BY (domain, kind, checked_at);

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`dns_records` ON CLUSTER `dmarc_cluster` AS `dmarc`.`dns_records_local` ENGINE = Distributed(dmarc_cluster, dmarc, dns_records_local, sipHash64(domain, kind, checked_at));
