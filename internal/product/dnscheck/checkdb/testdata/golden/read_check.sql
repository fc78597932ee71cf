-- Query args: [example.com .example.com example.com .example.com 200 20]
SELECT d, sel, sum(message_count) AS messages, sumIf(message_count, r = 'pass') AS passed
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND (header_from = ? OR endsWith(header_from, ?))
	AND (d = ? OR endsWith(d, ?))
	AND sel != '' AND length(sel) <= ? AND match(sel, '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$')
	AND report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'pass')
GROUP BY d, sel
ORDER BY messages DESC, d, sel
LIMIT ?;

-- Query args: [example.com .example.com example.com .example.com]
SELECT d, sel, sum(message_count) AS messages, sumIf(message_count, r = 'pass') AS passed
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND (header_from = ? OR endsWith(header_from, ?))
	AND sel != '' AND (d = ? OR endsWith(d, ?))
GROUP BY d, sel
ORDER BY d, sel;

-- QueryRow args: [example.com]
SELECT sum(message_count) AS messages,
	sumIf(message_count, dmarc_pass = 1 OR has(dkim_results, 'pass')
		OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes)) AS authenticated
FROM aggregate_records WHERE record_error = '' AND header_from = ?;

-- Query args: [2026-11-01 00:00:00 +0000 UTC]
SELECT DISTINCT policy_domain FROM aggregate_reports
WHERE date_begin >= ? AND policy_domain != '' ORDER BY policy_domain;

-- Query args: [example.com]
SELECT kind, argMax(name, checked_ns) AS latest_name, argMax(value, checked_ns) AS latest_value, max(checked_at) AS latest_checked_at
FROM dns_records WHERE domain = ? GROUP BY kind;

-- Query args: [example.com]
SELECT domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at
FROM dns_records WHERE domain = ? ORDER BY checked_ns, domain, kind;

-- Query
SELECT domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at
FROM dns_records ORDER BY checked_ns, domain, kind;
