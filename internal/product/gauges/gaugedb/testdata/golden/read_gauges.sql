-- Query args: [1793491200 1794096000]
SELECT policy_domain,
	sum(message_count) AS messages,
	sum(pass_messages) AS pass,
	toUInt64(sum(message_count) - sum(pass_messages)) AS failing,
	sum(strict_pass_messages) AS strict_pass
FROM aggregate_rollup
WHERE by_source = 0 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?)
GROUP BY policy_domain
HAVING sum(record_count) > 0;

-- Query args: [1793491200 1794096000 1793491200 1794096000]
WITH (SELECT arraySort(groupUniqArray(header_from))
	FROM aggregate_rollup WHERE by_source = 2 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?) AND report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')) AS known_selectors
SELECT policy_domain, sumIf(message_count, multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated') = 'unauthenticated') AS unauthenticated
FROM aggregate_outcomes
WHERE report_key = '' AND dmarc_pass = 0 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?)
GROUP BY policy_domain;

-- Query args: [1793491200 1794096000]
SELECT policy_domain, sum(failed_sessions) AS failed, sum(successful_sessions) AS successful
FROM tlsrpt_policies
WHERE date_begin >= toDateTime(?) AND date_begin < toDateTime(?)
GROUP BY policy_domain;

-- Query args: [1793491200 1794096000]
SELECT policy_domain, count() AS reports
FROM failure_reports
WHERE arrival_date >= toDateTime(?) AND arrival_date < toDateTime(?)
GROUP BY policy_domain;

-- Query args: [1793491200 1793491200 1793491200 1793491200 1792886400 1794096000 1792886400 1793491200]
SELECT domain AS policy_domain, count() AS sources, toUInt64(sum(now_messages - now_pass)) AS failing
FROM (
	SELECT any(policy_domain) AS domain, cityHash64(policy_domain, source_ip_hash) AS source,
		sumIf(message_count, date_begin < toDateTime(?)) AS before_messages,
		sumIf(message_count, date_begin < toDateTime(?) AND dmarc_pass = 1) AS before_pass,
		sumIf(message_count, date_begin >= toDateTime(?)) AS now_messages,
		sumIf(message_count, date_begin >= toDateTime(?) AND dmarc_pass = 1) AS now_pass
	FROM aggregate_sources
	WHERE by_source = 1 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?)
		AND source_ip_hash IN (SELECT source_ip_hash FROM aggregate_sources
			WHERE by_source = 1 AND dmarc_pass = 1 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?))
	GROUP BY source
	HAVING before_messages >= 10 AND before_pass >= 0.9 * before_messages
		AND now_messages >= 10 AND now_pass <= 0.5 * now_messages
)
GROUP BY domain;

-- Query args: [1793491200]
SELECT org_name, sum(message_count) AS messages,
	toUInt32(least(max(date_end), now())) AS last_end
FROM aggregate_reports
WHERE date_begin >= toDateTime(?)
GROUP BY org_name
ORDER BY messages DESC, org_name;

-- Query args: [1793491200]
SELECT policy_domain, sum(message_count) AS messages,
	toUInt32(least(max(date_end), now())) AS last_end
FROM aggregate_reports
WHERE date_begin >= toDateTime(?)
GROUP BY policy_domain
ORDER BY messages DESC, policy_domain;
