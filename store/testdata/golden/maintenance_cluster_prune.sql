-- shard 1 Query args: [aggregate_records_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_records_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_records_local DROP PARTITION ID '202605';

-- shard 1 Query args: [aggregate_rollup_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_rollup_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_rollup_local DROP PARTITION ID '202605';

-- shard 1 Query args: [aggregate_sources_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_sources_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_sources_local DROP PARTITION ID '202605';

-- shard 1 Query args: [aggregate_outcomes_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_outcomes_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_outcomes_local DROP PARTITION ID '202605';

-- shard 1 Query args: [aggregate_pair_buckets_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_pair_buckets_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_pair_buckets_local DROP PARTITION ID '202605';

-- shard 1 Query args: [aggregate_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_reports_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE aggregate_reports_local DROP PARTITION ID '202605';

-- shard 1 Query args: [failure_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE failure_reports_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE failure_reports_local DROP PARTITION ID '202605';

-- shard 1 Query args: [tlsrpt_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE tlsrpt_reports_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE tlsrpt_reports_local DROP PARTITION ID '202605';

-- shard 1 Query args: [tlsrpt_policies_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE tlsrpt_policies_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE tlsrpt_policies_local DROP PARTITION ID '202605';

-- shard 1 Query args: [tlsrpt_failures_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE tlsrpt_failures_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE tlsrpt_failures_local DROP PARTITION ID '202605';

-- shard 1 Query args: [inputs_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE inputs_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE inputs_local DROP PARTITION ID '202605';

-- shard 1 Query args: [input_attempts_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE input_attempts_local DROP PARTITION ID '202001';

-- shard 1 Exec
ALTER TABLE input_attempts_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_records_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_records_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_records_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_rollup_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_rollup_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_rollup_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_sources_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_sources_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_sources_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_outcomes_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_outcomes_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_outcomes_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_pair_buckets_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_pair_buckets_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_pair_buckets_local DROP PARTITION ID '202605';

-- shard 2 Query args: [aggregate_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_reports_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE aggregate_reports_local DROP PARTITION ID '202605';

-- shard 2 Query args: [failure_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE failure_reports_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE failure_reports_local DROP PARTITION ID '202605';

-- shard 2 Query args: [tlsrpt_reports_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE tlsrpt_reports_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE tlsrpt_reports_local DROP PARTITION ID '202605';

-- shard 2 Query args: [tlsrpt_policies_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE tlsrpt_policies_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE tlsrpt_policies_local DROP PARTITION ID '202605';

-- shard 2 Query args: [tlsrpt_failures_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE tlsrpt_failures_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE tlsrpt_failures_local DROP PARTITION ID '202605';

-- shard 2 Query args: [inputs_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE inputs_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE inputs_local DROP PARTITION ID '202605';

-- shard 2 Query args: [input_attempts_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE input_attempts_local DROP PARTITION ID '202001';

-- shard 2 Exec
ALTER TABLE input_attempts_local DROP PARTITION ID '202605';
