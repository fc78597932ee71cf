-- Query args: [1793491200 1794096000 1793491200 1794096000]
WITH (SELECT arraySort(groupUniqArray(header_from))
	FROM aggregate_rollup WHERE by_source = 2 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')) AS known_selectors
SELECT policy_domain, header_from, multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated') AS class,
	arraySort(arrayFilter((d, r) -> r = 'pass', dkim_domains, dkim_results)) AS dkim_pass,
	arraySort(arrayFilter((d, r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_domains, spf_results, spf_scopes)) AS spf_pass,
	sum(message_count) AS messages,
	count() AS records,
	uniqExact(source_ip) AS source_ips,
	uniqExact(toDate(date_begin)) AS days,
	arraySort(groupUniqArrayArray(arrayFilter((ds, r) -> r = 'pass' AND NOT endsWith(ds, '/'),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results))) AS selectors,
	arraySort(groupUniqArray(org_name)) AS reporters,
	topK(5)(source_ip) AS top_ips,
	arraySort(groupUniqArrayArray(override_types)) AS overrides,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_relaxed = 1) AS pass_rr,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_relaxed = 1) AS pass_sr,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_strict = 1) AS pass_rs,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_strict = 1) AS pass_ss,
	sumIf(message_count, report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'unverified')) AS unverified,
	ip_known_source, ip_known_authorised
FROM aggregate_records
GLOBAL ANY LEFT JOIN (SELECT ip AS source_ip, argMax(known_source, checked_at) AS ip_known_source,
	argMax(known_authorised, checked_at) AS ip_known_authorised
	FROM source_attribution GROUP BY ip) AS known_sources USING source_ip
WHERE record_error = '' AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')
GROUP BY policy_domain, header_from, class, dkim_pass, spf_pass, ip_known_source, ip_known_authorised
ORDER BY policy_domain, header_from, class, messages DESC,
	arrayStringConcat(dkim_pass, ','), arrayStringConcat(spf_pass, ','), ip_known_source, ip_known_authorised;

-- Query args: [1793491200 1794096000 1793491200 1794096000]
WITH (SELECT arraySort(groupUniqArray(header_from))
	FROM aggregate_rollup WHERE by_source = 2 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND 1) AS known_selectors
SELECT policy_domain, header_from, multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated') AS class,
	arraySort(arrayFilter((d, r) -> r = 'pass', dkim_domains, dkim_results)) AS dkim_pass,
	arraySort(arrayFilter((d, r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_domains, spf_results, spf_scopes)) AS spf_pass,
	sum(message_count) AS messages,
	count() AS records,
	uniqExact(source_ip) AS source_ips,
	uniqExact(toDate(date_begin)) AS days,
	arraySort(groupUniqArrayArray(arrayFilter((ds, r) -> r = 'pass' AND NOT endsWith(ds, '/'),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results))) AS selectors,
	arraySort(groupUniqArray(org_name)) AS reporters,
	topK(5)(source_ip) AS top_ips,
	arraySort(groupUniqArrayArray(override_types)) AS overrides,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_relaxed = 1) AS pass_rr,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_relaxed = 1) AS pass_sr,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_strict = 1) AS pass_rs,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_strict = 1) AS pass_ss,
	sumIf(message_count, report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'unverified')) AS unverified,
	ip_known_source, ip_known_authorised
FROM aggregate_records
GLOBAL ANY LEFT JOIN (SELECT ip AS source_ip, argMax(known_source, checked_at) AS ip_known_source,
	argMax(known_authorised, checked_at) AS ip_known_authorised
	FROM source_attribution GROUP BY ip) AS known_sources USING source_ip
WHERE record_error = '' AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND 1
GROUP BY policy_domain, header_from, class, dkim_pass, spf_pass, ip_known_source, ip_known_authorised
ORDER BY policy_domain, header_from, class, messages DESC,
	arrayStringConcat(dkim_pass, ','), arrayStringConcat(spf_pass, ','), ip_known_source, ip_known_authorised;

-- Query args: [1793491200 1794096000 1793491200 1794096000]
WITH (SELECT arraySort(groupUniqArray(header_from))
	FROM aggregate_rollup WHERE by_source = 2 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')) AS known_selectors
SELECT policy_domain, header_from, source_ip, multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated') AS class,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')
GROUP BY policy_domain, header_from, source_ip, class
ORDER BY policy_domain, header_from, messages DESC, source_ip, class;

-- Query args: [1793491200 1794096000]
SELECT policy_domain, p, sp, np, pct, testing, adkim, aspf
FROM aggregate_reports
WHERE date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND auth_result != 'fail'
ORDER BY policy_domain, date_begin DESC, ingested_at DESC, report_key
LIMIT 1 BY policy_domain;

-- Query args: [1793491200 1794096000]
SELECT policy_domain, uniqExact(report_key) AS reports,
	sum(message_count) AS messages, arraySort(groupUniqArray(org_name)) AS reporters
FROM aggregate_records
WHERE record_error = '' AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')
GROUP BY policy_domain
ORDER BY policy_domain;

-- Query args: [1793491200 1794096000]
SELECT policy_domain, reason, uniqExact(report_key) AS reports, sum(message_count) AS messages
FROM aggregate_records
GLOBAL ANY LEFT JOIN (SELECT report_key, any(multiIf(auth_detail = '' OR position(auth_detail, 'bare file') > 0 OR position(auth_detail, 'not a mail') > 0, 'no_mail',
	position(auth_detail, 'report_auth disabled') > 0, 'disabled',
	position(auth_detail, 'no DKIM signature') > 0, 'unsigned',
	position(auth_detail, 'temperror') > 0 OR position(auth_detail, 'neutral') > 0 OR position(auth_detail, 'not verified') > 0, 'not_checked',
	position(auth_detail, 'dkim=') > 0, 'unaligned',
	'other')) AS reason
	FROM aggregate_reports WHERE auth_result = 'unverified' GROUP BY report_key) AS unverified_reports USING report_key
WHERE record_error = '' AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'unverified')
GROUP BY policy_domain, reason
ORDER BY policy_domain, messages DESC, reason;
