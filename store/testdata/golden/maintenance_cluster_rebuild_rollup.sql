-- shard 1 Query
SELECT DISTINCT toString(toDate(date_begin)) AS d FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 ORDER BY d;

-- shard 1 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_sources_local ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 1 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_sources_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_outcomes_local ENGINE = SummingMergeTree((report_count, record_count, message_count, source_ip_state)) PARTITION BY toYYYYMM(date_begin) ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 1 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_outcomes_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_pair_buckets_local ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (kind, date_begin, bucket, policy_domain, report_key);

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY day, pair_bucket, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY day, pair_bucket, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 1 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_pair_buckets_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_rollup_local ENGINE = SummingMergeTree((report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key,
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
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, ds, org_name, report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key,
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
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, data_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, ds, org_name, report_key;

-- shard 1 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 1 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 1 Exec
ALTER TABLE aggregate_rollup_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 1 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Query
SELECT DISTINCT toString(toDate(date_begin)) AS d FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 ORDER BY d;

-- shard 2 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_sources_local ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 2 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_sources_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_outcomes_local ENGINE = SummingMergeTree((report_count, record_count, message_count, source_ip_state)) PARTITION BY toYYYYMM(date_begin) ORDER BY (policy_domain, date_begin, header_from, header_from_org, dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key);

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (policy_domain, date_begin, header_from, header_from_org,
	dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results, report_key, report_count, record_count, message_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 2 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_outcomes_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_pair_buckets_local ENGINE = SummingMergeTree((report_count, record_count, message_count)) PARTITION BY toYYYYMM(date_begin) ORDER BY (kind, date_begin, bucket, policy_domain, report_key);

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY day, pair_bucket, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM aggregate_records_local WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY day, pair_bucket, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count) SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 2 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_pair_buckets_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
CREATE TABLE aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX AS aggregate_rollup_local ENGINE = SummingMergeTree((report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)) PARTITION BY toYYYYMM(date_begin) ORDER BY (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key);

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key,
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
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY policy_domain, date_begin, ds, org_name, report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-01')
GROUP BY report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, if(report_key IN (SELECT report_key FROM aggregate_reports_local WHERE auth_result = 'fail'), 'auth:fail', '') AS data_key,
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
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, header_from, if(0 = 1, source_ip, ''), org_name, data_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY policy_domain, date_begin, ds, org_name, report_key;

-- shard 2 Exec
INSERT INTO aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX (by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records) SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM aggregate_records_local WHERE toYYYYMM(date_begin) = 202611 AND toDate(date_begin) = toDate('2026-11-02')
GROUP BY report_key;

-- shard 2 Query args: [aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX]
SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id;

-- shard 2 Exec
ALTER TABLE aggregate_rollup_local REPLACE PARTITION ID '202611' FROM aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;

-- shard 2 Exec
DROP TABLE IF EXISTS aggregate_records_staging_rollup_XXXXXXXXXXXXXXXX;
