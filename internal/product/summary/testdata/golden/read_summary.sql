-- Query args: [1793491200]
SELECT policy_domain,
		sum(message_count) AS messages,
		sumIf(message_count, dmarc_pass = 1) AS pass,
		sumIf(message_count, dkim_aligned_relaxed = 1) AS dkim_relaxed,
		sumIf(message_count, dkim_aligned_strict = 1) AS dkim_strict,
		sumIf(message_count, spf_aligned_relaxed = 1) AS spf_relaxed,
		sumIf(message_count, spf_aligned_strict = 1) AS spf_strict,
		sumIf(message_count, dmarc_pass = 0) AS failing
		FROM aggregate_records
		WHERE date_begin >= toDateTime(?) AND record_error = ''
		GROUP BY policy_domain
		ORDER BY policy_domain;

-- Query args: [1793491200]
SELECT policy_domain, source_ip, sum(message_count) AS m
		FROM aggregate_records
		WHERE date_begin >= toDateTime(?) AND record_error = '' AND dmarc_pass = 0
		GROUP BY policy_domain, source_ip
		ORDER BY policy_domain, m DESC, source_ip
		LIMIT 10 BY policy_domain;
