-- shard 1 Query args: [aggregate_records_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Query args: [aggregate_sources_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Query args: [aggregate_outcomes_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Query args: [aggregate_pair_buckets_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Query args: [aggregate_rollup_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Query
SELECT DISTINCT toString(toYYYYMM(date_begin)) FROM aggregate_outcomes_local
			WHERE report_count = 0 AND finalizeAggregation(source_ip_state) > length(source_ipsMap.ip_hash) * 1.1 + 1;

-- shard 2 Query args: [aggregate_records_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Query args: [aggregate_sources_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Query args: [aggregate_outcomes_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Query args: [aggregate_pair_buckets_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Query args: [aggregate_rollup_local]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Query
SELECT DISTINCT toString(toYYYYMM(date_begin)) FROM aggregate_outcomes_local
			WHERE report_count = 0 AND finalizeAggregation(source_ip_state) > length(source_ipsMap.ip_hash) * 1.1 + 1;
