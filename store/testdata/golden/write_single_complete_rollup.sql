-- QueryRow args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
SELECT count() FROM aggregate_rollup
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?;

-- QueryRow args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
SELECT count() FROM aggregate_sources
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_sources ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, 'auth:fail' AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records WHERE record_error = '' AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY report_key;

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_sources ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- QueryRow args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
SELECT count() FROM aggregate_outcomes
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_outcomes ENGINE = SummingMergeTree((report_count, record_count, message_count, source_ip_state)) PARTITION BY toYYYYMM(date_begin) ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, 'auth:fail' AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records WHERE record_error = '' AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM aggregate_records WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY report_key;

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_outcomes ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- QueryRow args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
SELECT count() FROM aggregate_pair_buckets
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_pair_buckets ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (kind, date_begin, bucket, policy_domain, report_key);

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', 'auth:fail' AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records WHERE record_error = '' AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY day, pair_bucket, data_key;

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY report_key;

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_pair_buckets ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- QueryRow args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
SELECT count() FROM aggregate_rollup
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?;

-- Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_rollup ENGINE = SummingMergeTree((report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, 'auth:fail' AS data_key,
	toUInt64(0),
	toUInt64(countIf(record_error = '')),
	sumIf(message_count, record_error = ''),
	sumIf(message_count, record_error = '' AND dmarc_pass = 1),
	sumIf(message_count, record_error = '' AND dkim_aligned_relaxed = 1),
	sumIf(message_count, record_error = '' AND dkim_aligned_strict = 1),
	sumIf(message_count, record_error = '' AND spf_aligned_relaxed = 1),
	sumIf(message_count, record_error = '' AND spf_aligned_strict = 1),
	sumIf(message_count, record_error = '' AND (dkim_aligned_strict = 1 OR spf_aligned_strict = 1)),
	toUInt64(countIf(record_error != ''))
FROM aggregate_records WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, data_key;

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY policy_domain, date_begin, ds, org_name, report_key;

-- Exec args: [example.com 1793491200 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records WHERE policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?
GROUP BY report_key;

-- Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- Exec
ALTER TABLE aggregate_rollup ATTACH PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;
