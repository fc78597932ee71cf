-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_pair_buckets_local` ON CLUSTER `dmarc_cluster` (
    kind          UInt8,
    date_begin    DateTime('UTC'),
    bucket        UInt16,
    policy_domain String,
    report_key    String,
    report_count  UInt64,
    record_count  UInt64,
    message_count UInt64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/dmarc/aggregate_pair_buckets', '{replica}', (report_count, record_count, message_count))
PARTITION BY toYYYYMM(date_begin)
ORDER BY (kind, date_begin, bucket, policy_domain, report_key);

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`aggregate_pair_buckets` ON CLUSTER `dmarc_cluster` AS `dmarc`.`aggregate_pair_buckets_local` ENGINE = Distributed(dmarc_cluster, dmarc, aggregate_pair_buckets_local, sipHash64(report_key));
