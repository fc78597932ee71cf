package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The generated data set, made by ClickHouse itself (INSERT ... SELECT FROM
// numbers()): records are numbered n; record n belongs to report
// n / recordsPerReport. A report is one reporter's report on one policy
// domain for one UTC day of the data set's days.
//
// Distributions (fixed by hashes of n and the report number, so the same
// for every run):
//   - 300 policy domains dNNN.example, skewed: a report's domain index is
//     floor(300 * u^3) with u uniform in [0, 1), so d0.example gets 15% of
//     the reports (an ESP-sized domain) and the last ones a few each;
//   - 20 reporter organisations, skewed towards the first (Google-like);
//   - senders per record: 55% the domain's own servers (200 IPs per
//     domain, aligned DKIM and SPF), 20% Amazon SES with a custom MAIL FROM
//     (5,000 shared IPs, aligned DKIM, relaxed-aligned SPF), 7% an ESP that
//     does not align (2,000 IPs), 6% forwarded (10,000 IPs, the domain's
//     DKIM broken, half with a forwarded override), 12% unauthenticated
//     spoofing (random IPs: millions of distinct sources);
//   - message counts as in real reports: 60% 1-3, 30% 1-50, 10% 1-5000;
//   - one record in 10,000 marked invalid (record_error).
const (
	recordsPerReport = 500
	dataDays         = 35
	domains          = 300
)

// dataStart is the first day of the data set; it ends dataDays later.
var dataStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

const orgs = `['google.com', 'Microsoft Corporation', 'Yahoo', 'Mail.Ru', 'comcast.net',
	'Fastmail Pty Ltd', 'mail.ru', 'Zoho', 'GMX', 'web.de', 'Proton', 'Cisco', 'Mimecast',
	'Proofpoint', 'Barracuda', 'Orange', 'T-Online', 'Seznam', 'Yandex', 'Apple Inc.']`

// recordsSQL inserts records [first, first+count). %[1]d first, %[2]d count,
// %[3]d recordsPerReport, %[4]d start (Unix), %[5]d days, %[6]d domains.
const recordsSQL = `INSERT INTO aggregate_records (report_key, report_id, record_index, org_name, policy_domain,
	date_begin, date_end, source_ip, message_count, disposition, dmarc_dkim, dmarc_spf,
	override_types, override_comments, header_from, header_from_org, envelope_from, envelope_to,
	dkim_domains, dkim_selectors, dkim_results, dkim_human_results,
	spf_domains, spf_scopes, spf_results, spf_human_results,
	dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	dmarc_pass, record_error)
SELECT hex(cityHash64(r, 3)) AS report_key, toString(r) AS report_id, toUInt32(n %% %[3]d) AS record_index,
	` + orgs + `[1 + toUInt32(20 * pow((cityHash64(r, 2) %% 1000000) / 1000000, 2))] AS org_name,
	concat('d', toString(toUInt32(%[6]d * pow((cityHash64(r, 1) %% 1000000) / 1000000, 3))), '.example') AS policy_domain,
	toDateTime(%[4]d + (r %% %[5]d) * 86400) AS date_begin, toDateTime(%[4]d + (r %% %[5]d) * 86400 + 86399) AS date_end,
	IPv4NumToString(toUInt32(multiIf(c < 55, 754974720 + cityHash64(policy_domain) %% 65536 * 256 + h %% 200,
		c < 75, 921698304 + h %% 5000,
		c < 82, 2807627776 + h %% 2000,
		c < 88, 3512008704 + h %% 10000,
		cityHash64(n, 9) %% 4294967296))) AS source_ip,
	toUInt64(multiIf(m < 60, 1 + h2 %% 3, m < 90, 1 + h2 %% 50, 1 + h2 %% 5000)) AS message_count,
	'none' AS disposition,
	if(c < 75, 'pass', 'fail') AS dmarc_dkim,
	if(c < 55, 'pass', 'fail') AS dmarc_spf,
	if(c >= 82 AND c < 85, ['forwarded'], emptyArrayString()) AS override_types,
	if(c >= 82 AND c < 85, [''], emptyArrayString()) AS override_comments,
	policy_domain AS header_from, policy_domain AS header_from_org,
	CAST(NULL AS Nullable(String)) AS envelope_from, CAST(NULL AS Nullable(String)) AS envelope_to,
	multiIf(c < 55, [policy_domain], c < 75, [policy_domain, 'amazonses.com'], c < 82, ['sendgrid.net'], c < 88, [policy_domain], emptyArrayString()) AS dkim_domains,
	multiIf(c < 55, [if(h %% 7 = 0, 's2', 's1')], c < 75, [ses, ses], c < 82, ['s1'], c < 88, ['s1'], emptyArrayString()) AS dkim_selectors,
	multiIf(c < 55, ['pass'], c < 75, ['pass', 'pass'], c < 82, ['pass'], c < 88, ['fail'], emptyArrayString()) AS dkim_results,
	multiIf(c < 55, [''], c < 75, ['', ''], c < 88, [''], emptyArrayString()) AS dkim_human_results,
	[multiIf(c < 55, policy_domain, c < 75, concat('mail.', policy_domain), c < 82, 'sendgrid.net', c < 88, 'gmail.com', policy_domain)] AS spf_domains,
	['mfrom'] AS spf_scopes,
	[multiIf(c < 82, 'pass', c < 88, 'softfail', 'fail')] AS spf_results,
	[''] AS spf_human_results,
	toUInt8(c < 75) AS dkim_aligned_relaxed, toUInt8(c < 55) AS dkim_aligned_strict,
	toUInt8(c < 75) AS spf_aligned_relaxed, toUInt8(c < 55) AS spf_aligned_strict,
	toUInt8(c < 75) AS dmarc_pass,
	if(h %% 10000 = 1, 'source_ip "": not an IP address', '') AS record_error
FROM (SELECT number AS n, intDiv(number, %[3]d) AS r, cityHash64(number, 7) AS h, h %% 100 AS c,
	cityHash64(number, 10) AS h2, h2 %% 100 AS m,
	['ug7nbtf4gccmlpwj322ax3p6ow6yfsug', '6gbrjpgwjskckoa6a5zn6fwqkn67xbtw', '224i4yxa5dv7c2xz3womw6peuasteono'][1 + h %% 3] AS ses
	FROM numbers(%[1]d, %[2]d))`

// reportsSQL writes the report rows of a partition's records.
const reportsSQL = `INSERT INTO aggregate_reports (report_key, org_name, org_email,
	extra_contact_info, report_id, policy_domain, date_begin, date_end,
	adkim, aspf, p, sp, np, pct, fo, testing, discovery_method,
	schema, version, errors, generator, record_count, message_count, invalid_records,
	source, input_name, input_sha256, ingested_at)
SELECT report_key, any(org_name), '', '', any(report_id), any(policy_domain), any(date_begin), any(date_end),
	'r', 'r', if(cityHash64(any(policy_domain)) %% 3 = 0, 'quarantine', 'none'), NULL, NULL, '100', NULL, NULL, NULL,
	'rfc7489', '', emptyArrayString(), 'benchqueries', count(), sum(message_count), countIf(record_error != ''),
	'bench', '', '', toDateTime(any(date_end) + 86400)
FROM aggregate_records
WHERE toYYYYMM(date_begin) = %d
GROUP BY report_key`

// load fills an empty database with records, report rows and rollups:
// records in chunks of chunk records.
func load(ctx context.Context, conn driver.Conn, records, chunk int, logf func(string, ...any)) error {
	start := time.Now()
	for first := 0; first < records; first += chunk {
		n := min(chunk, records-first)
		t := time.Now()
		q := fmt.Sprintf(recordsSQL, first, n, recordsPerReport, dataStart.Unix(), dataDays, domains)
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("inserting records %d..%d: %w", first, first+n, err)
		}
		rate := float64(n) / time.Since(t).Seconds()
		logf("records %d..%d inserted (%.0f records/s)", first, first+n, rate)
	}
	logf("records: %d in %s", records, time.Since(start).Round(time.Second))
	parts, err := partitions(ctx, conn)
	if err != nil {
		return err
	}
	for _, p := range parts {
		t := time.Now()
		if err := conn.Exec(ctx, fmt.Sprintf(reportsSQL, p)); err != nil {
			return fmt.Errorf("report rows of partition %d: %w", p, err)
		}
		logf("report rows of partition %d in %s", p, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

// partitions lists the months of aggregate_records.
func partitions(ctx context.Context, conn driver.Conn) ([]uint32, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT toUInt32(partition) FROM system.parts
		WHERE database = currentDatabase() AND table = 'aggregate_records' AND active ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var l []uint32
	for rows.Next() {
		var p uint32
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		l = append(l, p)
	}
	return l, rows.Err()
}

// oneLine squeezes a query onto one line for messages.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
