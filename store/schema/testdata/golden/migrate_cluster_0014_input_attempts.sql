-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`input_attempts_local` ON CLUSTER `dmarc_cluster` (
    time      DateTime('UTC'),
    source    String,
    input_id  String,
    instance  String,
    attempt   String,
    event     String
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/dmarc/input_attempts', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (source, input_id);

-- Exec
CREATE TABLE IF NOT EXISTS `dmarc`.`input_attempts` ON CLUSTER `dmarc_cluster` AS `dmarc`.`input_attempts_local` ENGINE = Distributed(dmarc_cluster, dmarc, input_attempts_local, sipHash64(source, input_id));
