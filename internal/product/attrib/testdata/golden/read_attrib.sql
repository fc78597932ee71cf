-- Query args: [100]
SELECT source_ip, arraySort(arrayDistinct(arrayConcat(groupUniqArray(policy_domain), groupUniqArray(header_from)))) AS domains,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND source_ip != '' AND source_ip NOT IN (SELECT ip FROM source_attribution)
GROUP BY source_ip
ORDER BY messages DESC, source_ip
LIMIT ?;

-- Query
SELECT ip, argMax(ptr, checked_at) AS latest_ptr, argMax(ptr_confirmed, checked_at) AS latest_ptr_confirmed,
	argMax(spf_domain, checked_at) AS latest_spf_domain, argMax(spf_mechanism, checked_at) AS latest_spf_mechanism,
	argMax(spf_includes, checked_at) AS latest_spf_includes,
	argMax(country, checked_at) AS latest_country, argMax(asn, checked_at) AS latest_asn, argMax(as_org, checked_at) AS latest_as_org,
	argMax(known_source, checked_at) AS latest_known_source, argMax(known_authorised, checked_at) AS latest_known_authorised,
	max(checked_at) AS latest_checked_at
FROM source_attribution GROUP BY ip ORDER BY ip;

-- Query args: [[192.0.2.1 2001:db8::1]]
SELECT ip, argMax(ptr, checked_at) AS latest_ptr, argMax(ptr_confirmed, checked_at) AS latest_ptr_confirmed,
	argMax(country, checked_at) AS latest_country, argMax(asn, checked_at) AS latest_asn, argMax(as_org, checked_at) AS latest_as_org,
	argMax(known_source, checked_at) AS latest_known_source, argMax(known_authorised, checked_at) AS latest_known_authorised
FROM source_attribution WHERE has(?, ip) GROUP BY ip;
