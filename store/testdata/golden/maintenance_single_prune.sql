-- Query args: [aggregate_records]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_records DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_records DROP PARTITION ID '202605';

-- Query args: [aggregate_rollup]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_rollup DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_rollup DROP PARTITION ID '202605';

-- Query args: [aggregate_sources]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_sources DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_sources DROP PARTITION ID '202605';

-- Query args: [aggregate_outcomes]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_outcomes DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_outcomes DROP PARTITION ID '202605';

-- Query args: [aggregate_pair_buckets]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_pair_buckets DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_pair_buckets DROP PARTITION ID '202605';

-- Query args: [aggregate_reports]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_reports DROP PARTITION ID '202001';

-- Exec
ALTER TABLE aggregate_reports DROP PARTITION ID '202605';

-- Query args: [failure_reports]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE failure_reports DROP PARTITION ID '202001';

-- Exec
ALTER TABLE failure_reports DROP PARTITION ID '202605';

-- Query args: [tlsrpt_reports]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE tlsrpt_reports DROP PARTITION ID '202001';

-- Exec
ALTER TABLE tlsrpt_reports DROP PARTITION ID '202605';

-- Query args: [tlsrpt_policies]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE tlsrpt_policies DROP PARTITION ID '202001';

-- Exec
ALTER TABLE tlsrpt_policies DROP PARTITION ID '202605';

-- Query args: [tlsrpt_failures]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE tlsrpt_failures DROP PARTITION ID '202001';

-- Exec
ALTER TABLE tlsrpt_failures DROP PARTITION ID '202605';

-- Query args: [inputs]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE inputs DROP PARTITION ID '202001';

-- Exec
ALTER TABLE inputs DROP PARTITION ID '202605';

-- Query args: [input_attempts]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE input_attempts DROP PARTITION ID '202001';

-- Exec
ALTER TABLE input_attempts DROP PARTITION ID '202605';
