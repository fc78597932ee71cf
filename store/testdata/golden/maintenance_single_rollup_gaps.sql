-- Query args: [aggregate_records]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Query args: [aggregate_sources]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Query args: [aggregate_outcomes]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Query args: [aggregate_pair_buckets]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Query args: [aggregate_rollup]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Query
SELECT DISTINCT toString(toYYYYMM(date_begin)) FROM aggregate_outcomes
			WHERE report_count = 0 AND finalizeAggregation(source_ip_state) > length(source_ipsMap.ip_hash) * 1.1 + 1;
