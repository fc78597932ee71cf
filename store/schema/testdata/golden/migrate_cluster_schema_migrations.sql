-- Exec
CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER `dmarc_cluster` (
    version     UInt32,
    name        String,
    applied_at  DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/dmarc/schema_migrations', '{shard}_{replica}', applied_at)
ORDER BY version;
