-- shard 1 Exec
CREATE TABLE dmarcd_claim_8cc309e8c427caa0 (t DateTime, owner String DEFAULT '') ENGINE = Memory;

-- shard 1 Exec args: [host|pidns|pid|token]
INSERT INTO dmarcd_claim_8cc309e8c427caa0 (t, owner) SELECT now(), ?;

-- shard 1 Exec
DROP TABLE IF EXISTS dmarcd_claim_8cc309e8c427caa0;

-- shard 1 Exec
RENAME TABLE dmarcd_claim_8cc309e8c427caa0 TO dmarcd_claim_8cc309e8c427caa0_stale_XXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS dmarcd_claim_8cc309e8c427caa0_stale_XXXXXXXX;

-- shard 1 Query args: [dmarcd_claim_]
SELECT name FROM system.tables
		WHERE database = currentDatabase() AND startsWith(name, ?);

-- shard 1 QueryRow
SELECT owner FROM dmarcd_claim_590cf88b8c219c0c WHERE owner != '' LIMIT 1;

-- shard 1 QueryRow args: [dmarcd_claim_590cf88b8c219c0c]
SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables
		WHERE database = currentDatabase() AND name = ?;

-- shard 1 QueryRow
SELECT toInt64(now()) - toInt64(max(t)) FROM dmarcd_claim_590cf88b8c219c0c;

-- shard 1 Exec
DROP TABLE IF EXISTS dmarcd_claim_590cf88b8c219c0c_stale_XXXXXXXX;

-- shard 2 Query args: [dmarcd_claim_]
SELECT name FROM system.tables
		WHERE database = currentDatabase() AND startsWith(name, ?);

-- shard 2 QueryRow
SELECT owner FROM dmarcd_claim_590cf88b8c219c0c WHERE owner != '' LIMIT 1;

-- shard 2 QueryRow args: [dmarcd_claim_590cf88b8c219c0c]
SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables
		WHERE database = currentDatabase() AND name = ?;

-- shard 2 QueryRow
SELECT toInt64(now()) - toInt64(max(t)) FROM dmarcd_claim_590cf88b8c219c0c;

-- shard 2 Exec
DROP TABLE IF EXISTS dmarcd_claim_590cf88b8c219c0c_stale_XXXXXXXX;

-- shard 1 Query args: [aggregate_records_staging_]
SELECT name FROM system.tables
		WHERE database = currentDatabase() AND startsWith(name, ?);

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Query args: [aggregate_records_staging_]
SELECT name FROM system.tables
		WHERE database = currentDatabase() AND startsWith(name, ?);

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;
