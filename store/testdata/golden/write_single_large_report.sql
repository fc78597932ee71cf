-- Exec
CREATE TABLE aggregate_records_staging_XXXXXXXXXXXXXXXX AS aggregate_records ENGINE = MergeTree() PARTITION BY toYYYYMM(date_begin) ORDER BY (policy_domain, date_begin, report_key, record_index);

-- Exec
SYSTEM STOP MERGES aggregate_records_staging_XXXXXXXXXXXXXXXX;

-- Query args: [aggregate_records_staging_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_records ATTACH PARTITION ID '202611' FROM aggregate_records_staging_XXXXXXXXXXXXXXXX;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_sources ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, '', toUInt64(0), toUInt64(1), message_count
FROM aggregate_records_staging_XXXXXXXXXXXXXXXX WHERE record_error = '' AND 1;

-- PrepareBatch
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count);

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_sources ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_outcomes ENGINE = SummingMergeTree((report_count, record_count, message_count, source_ip_state)) PARTITION BY toYYYYMM(date_begin) ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, '' AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records_staging_XXXXXXXXXXXXXXXX WHERE record_error = '' AND 1
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- PrepareBatch
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ipsMap.records);

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_outcomes ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_pair_buckets ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (kind, date_begin, bucket, policy_domain, report_key);

-- PrepareBatch
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count);

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_pair_buckets ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_rollup ENGINE = SummingMergeTree((report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);

-- PrepareBatch
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records);

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_rollup ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_XXXXXXXXXXXXXXXX;
