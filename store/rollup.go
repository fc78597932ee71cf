package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/go-faster/city"
)

// The rollup (schema/migrations/0007_rollups.sql): aggregate_records summed per
// (policy_domain, date_begin, header_from, org_name) (by_source = 0; no
// per-source rows, by_source = 1, are written: aggregate_sources answers
// per-source questions, and a rebuild drops any such rows), plus one
// marker row per report (report_key set, report_count = 1), plus the known
// selectors (by_source = 2, rollupSelectorsSelect): one row per report and
// DKIM "d=/selector" pass, what chsql.KnownSelectors reads. The writer adds a
// report's rollup as part of its commit, after the records and before the
// report row, in one atomic step:
//   - a report of at most BatchRows records: its rows summed here from the
//     very buffer that was inserted, sent with the marker in one INSERT
//     (one block);
//   - a larger one: into a staging rollup table per table, attached after
//     the records (ATTACH PARTITION ... FROM): the rows that are few
//     (aggregate_rollup's, aggregate_pair_buckets', every marker) summed
//     here as the records stream to staging (streamSums), the others by
//     ClickHouse from the staging table of its records (stagedFillOf);
//   - a retry that finds the records but no marker (the writer died after
//     the records): summed from the stored records, staged and attached.
//
// So whenever a report row exists, the rollup holds exactly that report's
// records once. RebuildRollup recomputes whole partitions from the records
// (for data stored before the rollup existed).

// AuthFailKey is the report_key of the data rows summed from reports whose
// mail failed authentication on arrival (chsql.AuthFailKey: the readers
// leave those rows out by it).
const AuthFailKey = chsql.AuthFailKey

// dataKeyOf is the report_key of the data rows of a report that came in
// meta: AuthFailKey if its mail failed authentication, else "".
func dataKeyOf(meta InputMeta) string {
	if meta.authResult() == "fail" {
		return AuthFailKey
	}
	return ""
}

// dataKeySQL is dataKey as an SQL string literal (empty or 'auth:fail').
func dataKeySQL(dataKey string) string { return "'" + dataKey + "'" }

// rebuildDataKey is the data rows' report_key when the records on rt are
// summed again (RebuildRollup): from the auth_result of each record's
// report row there (chsql.FailedAuthIn on rt's table).
func rebuildDataKey(rt route) string {
	return `if(` + chsql.FailedAuthIn(rt.table("aggregate_reports")) + `, '` + AuthFailKey + `', '')`
}

// rollupOrderBy is the sorting key of aggregate_rollup; staging tables must
// have the same one for ATTACH PARTITION FROM.
const rollupOrderBy = "(by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key)"

// rollupSums are the summed columns of aggregate_rollup.
const rollupSums = "(report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records)"

const rollupColumnList = `by_source, policy_domain, date_begin, header_from, source_ip, org_name, report_key,
	report_count, record_count, message_count, pass_messages, dkim_relaxed_messages, dkim_strict_messages, spf_relaxed_messages, spf_strict_messages, strict_pass_messages, invalid_records`

// rollupDataSelect sums records of a table ({table}, where {where}) into rollup
// data rows; rollupMarkerSelect makes one marker row per report. Their
// columns have no aliases named like a column of the table: such an alias
// (report_key) would replace that column in the WHERE clause. The data
// rows' report_key is {data_key} (dataKeySQL or rebuildDataKey), grouped by
// its alias data_key: ClickHouse 18.16 rejects the expression itself in
// GROUP BY when it holds an IN subquery ("not under aggregate function"),
// and takes the alias.
const rollupDataSelect = `SELECT toUInt8({grain}), policy_domain, date_begin, header_from, if({grain} = 1, source_ip, ''), org_name, {data_key} AS data_key,
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
FROM {table} WHERE {where}
GROUP BY policy_domain, date_begin, header_from, if({grain} = 1, source_ip, ''), org_name, data_key`

// rollupSelectorsSelect makes the known-selector rows (by_source = 2) of
// the records of a table (%s, where %s): one per report and DKIM
// "d=/selector" that passed in a valid record with a non-empty selector,
// the pair in header_from, the report in report_key; record_count and
// message_count count the pair's occurrences and their messages (never 0
// together, so merges keep the row). chsql.KnownSelectors reads them.
// The filter is the expression the readiness readers apply to the DKIM
// arrays of records (the selectors column of internal/product/readiness).
const rollupSelectorsSelect = `SELECT toUInt8(2), policy_domain, date_begin, ds, '', org_name, report_key,
	toUInt64(0), toUInt64(count()), sum(message_count),
	toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM {table}
ARRAY JOIN arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'),
	arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
WHERE record_error = '' AND {where}
GROUP BY policy_domain, date_begin, ds, org_name, report_key`

const rollupMarkerSelect = `SELECT toUInt8({grain}), any(policy_domain), any(date_begin), '', '', any(org_name), report_key,
	toUInt64(1), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
FROM {table} WHERE {where}
GROUP BY report_key`

// aggregate_sources (schema/migrations/0008_sources.sql): valid records summed
// per (policy_domain, date_begin, header_from, header_from_org, source_ip,
// sourcesOutcome) (by_source = 1), plus one marker row per report
// (by_source = 0, report_key set, report_count = 1). Its grain without IP
// (by_source = 0, empty report_key) is not written: aggregate_outcomes holds
// it, with the sources' sketch.
const sourcesOutcome = `dmarc_pass, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed, spf_aligned_strict,
	override_types, dkim_domains, dkim_selectors, dkim_results, spf_domains, spf_scopes, spf_results`

const sourcesOrderBy = `(by_source, policy_domain, date_begin, header_from, source_ip, header_from_org, ` + sourcesOutcome + `, report_key)`

const sourcesSums = "(report_count, record_count, message_count)"

const sourcesColumnList = `by_source, policy_domain, date_begin, header_from, header_from_org, source_ip,
	` + sourcesOutcome + `, report_key, report_count, record_count, message_count`

const sourcesDataSelect = `SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	` + sourcesOutcome + `, {data_key} AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM {table} WHERE record_error = '' AND {where}
GROUP BY policy_domain, date_begin, header_from, header_from_org, source_ip,
	` + sourcesOutcome + `, data_key`

// sourcesStagedSelect is sourcesDataSelect for the staged records of one
// large report: a row per valid record (record_count 1), not summed here.
// The records of a report are nearly all of distinct sources and
// outcomes, so a GROUP BY by the 18 columns of the key would cost the
// server a hash table of about as many rows as records and save almost
// none; SummingMergeTree sums the few rows of one key when it merges, and
// every reader sums rows by key (the rows of several reports share keys
// anyway).
const sourcesStagedSelect = `SELECT toUInt8(1), policy_domain, date_begin, header_from, header_from_org, source_ip,
	` + sourcesOutcome + `, {data_key}, toUInt64(0), toUInt64(1), message_count
FROM {table} WHERE record_error = '' AND {where}`

const sourcesMarkerSelect = `SELECT toUInt8(0), any(policy_domain), any(date_begin), '', '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM {table} WHERE {where}
GROUP BY report_key`

// aggregate_outcomes (schema/migrations/0009_outcomes.sql): valid records summed
// per (policy_domain, date_begin, header_from, header_from_org,
// sourcesOutcome) with the sketch of their source IPs (source_ip_state), plus
// one marker row per report.
const outcomesOrderBy = `(policy_domain, date_begin, header_from, header_from_org, ` + sourcesOutcome + `, report_key)`

const outcomesSums = "(report_count, record_count, message_count, source_ip_state)"

// outcomesIPColumns are the distinct source IPs of a row as arrays
// (migration 0011): a nested structure ending in "Map", which
// SummingMergeTree merges by key (ip_hash) summing records.
const outcomesIPColumns = "source_ipsMap.ip_hash, source_ipsMap.records"

// outcomesRowColumns start every column list of aggregate_outcomes.
const outcomesRowColumns = `policy_domain, date_begin, header_from, header_from_org,
	` + sourcesOutcome + `, report_key, report_count, record_count, message_count, source_ip`

const outcomesColumnList = outcomesRowColumns + ", source_ip_state, " + outcomesIPColumns

// outcomesSentColumns are the columns sendOutcomes sends: the server fills
// source_ip_state and source_ipsMap.ip_hash from source_ip (DEFAULT).
const outcomesSentColumns = outcomesRowColumns + ", source_ipsMap.records"

const outcomesDataSelect = `SELECT policy_domain, date_begin, header_from, header_from_org,
	` + sourcesOutcome + `, {data_key} AS data_key, toUInt64(0), toUInt64(count()), sum(message_count), any(source_ip), uniqState(source_ip),
	(sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)]) AS ips).1, ips.2
FROM {table} WHERE record_error = '' AND {where}
GROUP BY policy_domain, date_begin, header_from, header_from_org,
	` + sourcesOutcome + `, data_key`

const outcomesMarkerSelect = `SELECT any(policy_domain), any(date_begin), '', '',
	toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
	emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(), emptyArrayString(),
	report_key, toUInt64(1), toUInt64(0), toUInt64(0), '', arrayReduce('uniqState', emptyArrayString()),
	emptyArrayUInt32(), emptyArrayUInt64()
FROM {table} WHERE {where}
GROUP BY report_key`

// aggregate_pair_buckets (schema/migrations/0013_pair_buckets.sql): the messages
// of valid records per UTC day and pair bucket over all policy domains
// (kind = 1), plus one marker row per report (kind = 0). The bucket is
// toUInt16(cityHash64(source_ip, header_from)), pairBucket in Go.
const pairBucketsOrderBy = "(kind, date_begin, bucket, policy_domain, report_key)"

const pairBucketsSums = "(report_count, record_count, message_count)"

const pairBucketsColumnList = "kind, date_begin, bucket, policy_domain, report_key, report_count, record_count, message_count"

// The data rows' day and bucket have aliases (day, pair_bucket) that name
// no column of the records.
const pairBucketsDataSelect = `SELECT toUInt8(1), toStartOfDay(date_begin) AS day, toUInt16(cityHash64(source_ip, header_from)) AS pair_bucket,
	'', {data_key} AS data_key, toUInt64(0), toUInt64(count()), sum(message_count)
FROM {table} WHERE record_error = '' AND {where}
GROUP BY day, pair_bucket, data_key`

const pairBucketsMarkerSelect = `SELECT toUInt8(0), any(date_begin), toUInt16(0), any(policy_domain), report_key, toUInt64(1), toUInt64(0), toUInt64(0)
FROM {table} WHERE {where}
GROUP BY report_key`

// pairBucket is the bucket of the pair (ip, headerFrom) as ClickHouse
// computes it: the low 16 bits of cityHash64(ip, headerFrom), which hashes
// each argument with CityHash64 (go-faster/city's CH64, the version
// ClickHouse embeds) and combines the two with CityHash's Hash128to64.
func pairBucket(ip, headerFrom string) uint16 {
	x, y := city.CH64([]byte(ip)), city.CH64([]byte(headerFrom))
	const mul = 0x9ddfea08eb382d69
	a := (x ^ y) * mul
	a ^= a >> 47
	b := (y ^ a) * mul
	b ^= b >> 47
	b *= mul
	return uint16(b)
}

// rollupTable is one table the writer sums a report's records into as a
// step of its commit: its sorting key and summed columns (staging tables
// must have the same), its column list, the INSERT ... SELECTs that sum
// records of a table ({table}) matching a condition ({where}) into it, and the
// failpoint after its step ("" for the last: write.go's after-rollup).
type rollupTable struct {
	name, orderBy, sums, columns string
	selects                      []string
	after                        string
}

// grain renders a select template's grain ({grain}: 0 per header_from, 1
// per source IP, 2 per DKIM selector), keeping its other placeholders.
func grain(sel string, bySource int) string {
	return strings.ReplaceAll(sel, "{grain}", strconv.Itoa(bySource))
}

// rollupSelect renders a rollup select template: {table} is the table the
// records are read from, {where} their condition, {data_key} the SQL
// expression of the data rows' report_key. One pass: a value is never
// read as a placeholder.
func rollupSelect(sel, table, where, dataKey string) string {
	return strings.NewReplacer("{table}", table, "{where}", where, "{data_key}", dataKey).Replace(sel)
}

var (
	sourcesTable = rollupTable{"aggregate_sources", sourcesOrderBy, sourcesSums, sourcesColumnList,
		[]string{sourcesDataSelect, sourcesMarkerSelect}, "after-sources"}
	outcomesTable = rollupTable{"aggregate_outcomes", outcomesOrderBy, outcomesSums, outcomesColumnList,
		[]string{outcomesDataSelect, outcomesMarkerSelect}, "after-outcomes"}
	pairBucketsTable = rollupTable{"aggregate_pair_buckets", pairBucketsOrderBy, pairBucketsSums, pairBucketsColumnList,
		[]string{pairBucketsDataSelect, pairBucketsMarkerSelect}, "after-pair-buckets"}
	rollupTableDef = rollupTable{"aggregate_rollup", rollupOrderBy, rollupSums, rollupColumnList,
		[]string{grain(rollupDataSelect, 0), grain(rollupSelectorsSelect, 2), grain(rollupMarkerSelect, 0)}, ""}
	// rollupTables in the order of a commit: aggregate_rollup's marker
	// last, so that it says the report's rollups are complete.
	rollupTables = []rollupTable{sourcesTable, outcomesTable, pairBucketsTable, rollupTableDef}
)

// rollupStagingPrefix names staging rollup tables; it starts with
// stagingPrefix so that dropOrphanedStaging drops those of crashed writers.
const rollupStagingPrefix = stagingPrefix + "rollup_"

// EnvFailpoint names a step of a report's commit at which the process kills
// itself with SIGKILL (for crash tests): after-staging (a large report's
// records and rollup are staged, nothing attached), after-records (the
// records are committed), after-sources (aggregate_sources too),
// after-outcomes (aggregate_outcomes too), after-pair-buckets
// (aggregate_pair_buckets too), after-rollup (aggregate_rollup too),
// after-report (the report row too); or report:ID, before anything of the
// report with that report ID is written.
const EnvFailpoint = "DMARCD_FAILPOINT"

// failpoint kills the process when EnvFailpoint names step.
func failpoint(step string) {
	if os.Getenv(EnvFailpoint) == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// failpointReport kills the process when EnvFailpoint is "report:ID" and
// the report about to be written has report ID ID: an input that kills
// whatever process holds it, as an input that gets it OOM-killed would (the
// crash-loop tests).
func failpointReport(reportID string) {
	if v := os.Getenv(EnvFailpoint); len(v) > 7 && v[:7] == "report:" && v[7:] == reportID {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

// rollupKey is a data row's key within one report: bySource 0 and
// sourceIP "" for the per-domain grain; bySource 2 (known selectors) has
// the "d=/selector" pair in headerFrom and the report's key in report_key.
type rollupKey struct {
	bySource             uint8
	headerFrom, sourceIP string
}

// rollupSumsRow are a data row's sums.
type rollupSumsRow struct {
	records, messages, pass, dkimRelaxed, dkimStrict, spfRelaxed, spfStrict, strictPass, invalid uint64
}

// add adds record i of cols.
func (r *rollupSumsRow) add(cols *recordColumns, i int) {
	if cols.recordError[i] != "" {
		r.invalid++
		return
	}
	m := cols.messageCount[i]
	r.records++
	r.messages += m
	if cols.dmarcPass[i] == 1 {
		r.pass += m
	}
	if cols.dkimRelaxed[i] == 1 {
		r.dkimRelaxed += m
	}
	if cols.dkimStrict[i] == 1 {
		r.dkimStrict += m
	}
	if cols.spfRelaxed[i] == 1 {
		r.spfRelaxed += m
	}
	if cols.spfStrict[i] == 1 {
		r.spfStrict += m
	}
	if cols.dkimStrict[i] == 1 || cols.spfStrict[i] == 1 {
		r.strictPass += m
	}
}

// sendRollup sums the buffered records of one report (all of them, the
// buffer that was just inserted) and inserts them in each rollup table with
// the report's marker row, one INSERT (one block: atomic) per table, in
// the order of rollupTables.
func (s *Store) sendRollup(ctx context.Context, rt route, rep *reportFields, cols *recordColumns) error {
	groups := sourceGroupsOf(cols)
	if err := s.sendSources(ctx, rt, rep, cols, groups); err != nil {
		return err
	}
	failpoint(sourcesTable.after)
	if err := s.sendOutcomes(ctx, rt, rep, cols, groups); err != nil {
		return err
	}
	failpoint(outcomesTable.after)
	if err := s.sendPairBuckets(ctx, rt, rep, cols, groups); err != nil {
		return err
	}
	failpoint(pairBucketsTable.after)
	return s.sendRollupSums(ctx, rt, rep, cols)
}

// outcomeKey encodes the columns of record i that aggregate_sources and
// aggregate_outcomes keep besides the report's and the IP: header_from,
// header_from_org, the alignment flags and the arrays (with their lengths,
// so that [] and [”] differ).
func outcomeKey(cols *recordColumns, i int) string {
	var b strings.Builder
	b.WriteString(cols.headerFrom[i])
	b.WriteByte(0)
	b.WriteString(cols.headerFromOrg[i])
	b.WriteByte(0)
	b.Write([]byte{cols.dmarcPass[i], cols.dkimRelaxed[i], cols.dkimStrict[i], cols.spfRelaxed[i], cols.spfStrict[i]})
	for _, a := range [][]string{cols.overrideTypes[i], cols.dkimDomains[i], cols.dkimSelectors[i], cols.dkimResults[i],
		cols.spfDomains[i], cols.spfScopes[i], cols.spfResults[i]} {
		b.WriteString(strconv.Itoa(len(a)))
		for _, x := range a {
			b.WriteByte(0)
			b.WriteString(x)
		}
		b.WriteByte(1)
	}
	return b.String()
}

// sourceGroup is the valid records of one report with one source IP and
// one outcome (outcomeKey): a row of aggregate_sources.
type sourceGroup struct {
	ip, outcome       string
	first             int // a record of the group, for its columns
	records, messages uint64
}

// sourceGroupsOf groups the valid records of cols by source IP and
// outcome, in the order of their first records.
func sourceGroupsOf(cols *recordColumns) []sourceGroup {
	type key struct{ ip, outcome string }
	index := map[key]int{}
	var groups []sourceGroup
	for i := range cols.len() {
		if cols.recordError[i] != "" {
			continue
		}
		k := key{cols.sourceIP[i], outcomeKey(cols, i)}
		j, ok := index[k]
		if !ok {
			j = len(groups)
			index[k] = j
			groups = append(groups, sourceGroup{ip: k.ip, outcome: k.outcome, first: i})
		}
		groups[j].records++
		groups[j].messages += cols.messageCount[i]
	}
	return groups
}

// sendSources inserts the report's aggregate_sources rows (one per source
// group) and marker, as sourcesDataSelect and sourcesMarkerSelect would sum
// them.
func (s *Store) sendSources(ctx context.Context, rt route, rep *reportFields, cols *recordColumns, groups []sourceGroup) error {
	return sendRows(ctx, rt, sourcesTable.name, sourcesTable.columns, sourcesTable.name, func(b driver.Batch) (int, error) {
		return appendSources(b, rep, cols, groups)
	})
}

// appendSources appends what sendSources inserts to b and returns the
// number of rows.
func appendSources(b driver.Batch, rep *reportFields, cols *recordColumns, groups []sourceGroup) (int, error) {
	for _, g := range groups {
		i := g.first
		if err := b.Append(uint8(1), rep.domain, rep.begin, cols.headerFrom[i], cols.headerFromOrg[i], g.ip,
			cols.dmarcPass[i], cols.dkimRelaxed[i], cols.dkimStrict[i], cols.spfRelaxed[i], cols.spfStrict[i],
			cols.overrideTypes[i], cols.dkimDomains[i], cols.dkimSelectors[i], cols.dkimResults[i],
			cols.spfDomains[i], cols.spfScopes[i], cols.spfResults[i],
			rep.dataKey, uint64(0), g.records, g.messages); err != nil {
			return 0, err
		}
	}
	if err := appendSourcesMarker(b, rep); err != nil {
		return 0, err
	}
	return len(groups) + 1, nil
}

// sendRows inserts into table (as rt names it) the rows that fill appends,
// in one INSERT (one block); label names the table in errors.
func sendRows(ctx context.Context, rt route, table, columns, label string, fill func(driver.Batch) (int, error)) error {
	return sendRowsTo(ctx, rt, rt.table(table), columns, label, fill)
}

// sendRowsTo is sendRows into a table named as is (a staging table).
func sendRowsTo(ctx context.Context, rt route, table, columns, label string, fill func(driver.Batch) (int, error)) error {
	b, err := rt.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return fmt.Errorf("inserting %s: %w", label, err)
	}
	n, err := fill(b)
	if err != nil {
		b.Abort()
		return fmt.Errorf("inserting %s: %w", label, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("inserting %d %s rows: %w", n, label, err)
	}
	return nil
}

// appendSourcesMarker appends the report's marker row of aggregate_sources
// (sourcesColumnList), as sourcesMarkerSelect makes it.
func appendSourcesMarker(b driver.Batch, rep *reportFields) error {
	none := []string{}
	return b.Append(uint8(0), rep.domain, rep.begin, "", "", "", uint8(0), uint8(0), uint8(0), uint8(0), uint8(0),
		none, none, none, none, none, none, none, rep.key, uint64(1), uint64(0), uint64(0))
}

// sendOutcomes inserts the report's aggregate_outcomes rows and marker.
// clickhouse-go cannot send aggregate states, so each source group goes out
// as a row of its own with its IP in source_ip and its records in
// source_ipsMap.records, and the server fills the row's sketch and IP hash
// from the IP (source_ip_state, source_ipsMap.ip_hash DEFAULT); merges sum
// the rows of an outcome into one with all its IPs. The outcome's sums ride
// on its first row, the others carry 0.
func (s *Store) sendOutcomes(ctx context.Context, rt route, rep *reportFields, cols *recordColumns, groups []sourceGroup) error {
	return sendRows(ctx, rt, outcomesTable.name, outcomesSentColumns, outcomesTable.name, func(b driver.Batch) (int, error) {
		return appendOutcomes(b, rep, cols, groups)
	})
}

// appendOutcomes appends what sendOutcomes inserts to b and returns the
// number of rows.
func appendOutcomes(b driver.Batch, rep *reportFields, cols *recordColumns, groups []sourceGroup) (int, error) {
	type sum struct{ records, messages uint64 }
	sums := map[string]*sum{}
	for _, g := range groups {
		if sums[g.outcome] == nil {
			sums[g.outcome] = &sum{}
		}
		sums[g.outcome].records += g.records
		sums[g.outcome].messages += g.messages
	}
	for _, g := range groups {
		var r sum
		if x := sums[g.outcome]; x != nil {
			r, sums[g.outcome] = *x, nil // the first row of the outcome
		}
		i := g.first
		if err := b.Append(rep.domain, rep.begin, cols.headerFrom[i], cols.headerFromOrg[i],
			cols.dmarcPass[i], cols.dkimRelaxed[i], cols.dkimStrict[i], cols.spfRelaxed[i], cols.spfStrict[i],
			cols.overrideTypes[i], cols.dkimDomains[i], cols.dkimSelectors[i], cols.dkimResults[i],
			cols.spfDomains[i], cols.spfScopes[i], cols.spfResults[i],
			rep.dataKey, uint64(0), r.records, r.messages, g.ip, []uint64{g.records}); err != nil {
			return 0, err
		}
	}
	if err := appendOutcomesMarker(b, rep); err != nil {
		return 0, err
	}
	return len(groups) + 1, nil
}

// sendPairBuckets inserts the report's aggregate_pair_buckets rows (one per
// bucket of its valid records) and marker, as pairBucketsDataSelect and
// pairBucketsMarkerSelect would sum them. It sums the source groups (one
// IP and one From domain each), not the records.
func (s *Store) sendPairBuckets(ctx context.Context, rt route, rep *reportFields, cols *recordColumns, groups []sourceGroup) error {
	return sendRows(ctx, rt, pairBucketsTable.name, pairBucketsTable.columns, pairBucketsTable.name, func(b driver.Batch) (int, error) {
		return appendPairBuckets(b, rep, cols, groups)
	})
}

// appendPairBuckets appends what sendPairBuckets inserts to b and returns
// the number of rows.
func appendPairBuckets(b driver.Batch, rep *reportFields, cols *recordColumns, groups []sourceGroup) (int, error) {
	var sums orderedSums[uint16, pairSums]
	for _, g := range groups {
		r := sums.at(pairBucket(g.ip, cols.headerFrom[g.first]))
		r.records += g.records
		r.messages += g.messages
	}
	return appendPairBucketSums(b, rep, &sums)
}

// pairSums are the sums of a pair bucket's data row.
type pairSums struct{ records, messages uint64 }

// appendPairBucketSums appends the data rows sums and the report's marker
// of aggregate_pair_buckets to b and returns the number of rows.
func appendPairBucketSums(b driver.Batch, rep *reportFields, sums *orderedSums[uint16, pairSums]) (int, error) {
	y, m, d := rep.begin.UTC().Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for _, k := range sums.order {
		if err := b.Append(uint8(1), day, k, "", rep.dataKey, uint64(0), sums.m[k].records, sums.m[k].messages); err != nil {
			return 0, err
		}
	}
	if err := b.Append(uint8(0), rep.begin, uint16(0), rep.domain, rep.key, uint64(1), uint64(0), uint64(0)); err != nil {
		return 0, err
	}
	return len(sums.order) + 1, nil
}

// orderedSums maps keys to sums and lists the keys in the order of their
// first use.
type orderedSums[K comparable, V any] struct {
	m     map[K]*V
	order []K
}

// at returns the sums of k, new zero sums the first time.
func (o *orderedSums[K, V]) at(k K) *V {
	r := o.m[k]
	if r == nil {
		if o.m == nil {
			o.m = map[K]*V{}
		}
		r = new(V)
		o.m[k] = r
		o.order = append(o.order, k)
	}
	return r
}

// sendRollupSums inserts the report's aggregate_rollup rows and marker.
func (s *Store) sendRollupSums(ctx context.Context, rt route, rep *reportFields, cols *recordColumns) error {
	return sendRows(ctx, rt, "aggregate_rollup", rollupColumnList, "rollup", func(b driver.Batch) (int, error) {
		return appendRollupSums(b, rep, cols)
	})
}

// appendRollupSums appends what sendRollupSums inserts to b and returns the
// number of rows.
func appendRollupSums(b driver.Batch, rep *reportFields, cols *recordColumns) (int, error) {
	var sums orderedSums[rollupKey, rollupSumsRow]
	for i := range cols.len() {
		addRollupSums(&sums, cols, i)
	}
	return appendRollupSumRows(b, rep, &sums)
}

// addRollupSums adds record i of cols to the aggregate_rollup data rows
// sums: its header_from row (by_source 0) and, as rollupSelectorsSelect,
// one count per occurrence of a passing DKIM "d=/selector" pair (by_source
// 2).
func addRollupSums(sums *orderedSums[rollupKey, rollupSumsRow], cols *recordColumns, i int) {
	sums.at(rollupKey{0, cols.headerFrom[i], ""}).add(cols, i)
	if cols.recordError[i] != "" {
		return
	}
	for j, d := range cols.dkimDomains[i] {
		if j >= len(cols.dkimSelectors[i]) || j >= len(cols.dkimResults[i]) || cols.dkimResults[i][j] != "pass" {
			continue
		}
		ds := d + "/" + cols.dkimSelectors[i][j]
		if strings.HasSuffix(ds, "/") {
			continue
		}
		r := sums.at(rollupKey{2, ds, ""})
		r.records++
		r.messages += cols.messageCount[i]
	}
}

// appendRollupSumRows appends the data rows sums and the report's marker
// of aggregate_rollup to b and returns the number of rows.
func appendRollupSumRows(b driver.Batch, rep *reportFields, sums *orderedSums[rollupKey, rollupSumsRow]) (int, error) {
	for _, k := range sums.order {
		r := sums.m[k]
		reportKey := rep.dataKey
		if k.bySource == 2 {
			reportKey = rep.key
		}
		if err := b.Append(k.bySource, rep.domain, rep.begin, k.headerFrom, k.sourceIP, rep.org, reportKey,
			uint64(0), r.records, r.messages, r.pass, r.dkimRelaxed, r.dkimStrict, r.spfRelaxed, r.spfStrict,
			r.strictPass, r.invalid); err != nil {
			return 0, err
		}
	}
	if err := b.Append(uint8(0), rep.domain, rep.begin, "", "", rep.org, rep.key,
		uint64(1), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0)); err != nil {
		return 0, err
	}
	return len(sums.order) + 1, nil
}

// createRollupStaging creates an empty table like t on rt.
func (s *Store) createRollupStaging(ctx context.Context, rt route, t rollupTable) (string, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	name := rollupStagingPrefix + hex.EncodeToString(rnd[:])
	q := fmt.Sprintf("CREATE TABLE %s AS %s ENGINE = SummingMergeTree(%s) PARTITION BY toYYYYMM(date_begin) ORDER BY %s",
		name, rt.table(t.name), t.sums, t.orderBy)
	if err := rt.conn.Exec(ctx, q); err != nil {
		return "", fmt.Errorf("creating %s staging table: %w", t.name, err)
	}
	return name, nil
}

// fillRollupStaging sums the records of table (as rt names it) matching
// where (with args) into staging, a staging table of t: data rows, then one
// marker per report. dataKey is the SQL expression of the data rows'
// report_key (dataKeySQL, or rebuildDataKey).
func (s *Store) fillRollupStaging(ctx context.Context, rt route, t rollupTable, staging, table, dataKey, where string, args ...any) error {
	for _, sel := range t.selects {
		if err := s.fillRollupSelect(ctx, rt, t, sel, staging, table, dataKey, where, args...); err != nil {
			return err
		}
	}
	return nil
}

// fillRollupSelect runs one of t's selects into staging.
func (s *Store) fillRollupSelect(ctx context.Context, rt route, t rollupTable, sel, staging, table, dataKey, where string, args ...any) error {
	q := "INSERT INTO " + staging + " (" + t.columns + ") " + rollupSelect(sel, rt.table(table), where, dataKey)
	if err := rt.conn.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("summing %s into %s: %w", table, staging, err)
	}
	return nil
}

// dropTable drops a staging table, also after ctx was cancelled.
func (s *Store) dropTable(ctx context.Context, rt route, name string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := rt.conn.Exec(dctx, "DROP TABLE IF EXISTS "+name); err != nil {
		s.log.Warn("dropping staging table", "table", name, "err", err)
	}
}

// attachRollup attaches the one partition of a staging table of t to t:
// all its rows appear at once.
func (s *Store) attachRollup(ctx context.Context, rt route, t rollupTable, staging string) error {
	return s.attachPartition(ctx, rt, t.name, staging)
}

// stagedRollup is a staging table filled for a rollup table.
type stagedRollup struct {
	t       rollupTable
	staging string
}

// streamSumsKeys bounds the aggregate_rollup data rows that a large report
// sums in Go as its records stream by (streamSums; its pair buckets are at
// most 65,536): a report with more header_from values and known selectors
// has its aggregate_rollup and aggregate_pair_buckets data rows summed by
// ClickHouse from its staged records, so that the writer's memory stays
// bounded whatever the report holds.
var streamSumsKeys = 20000

// streamSums are a large report's data rows of aggregate_rollup and
// aggregate_pair_buckets, summed from each buffer of records before it is
// sent to staging: rows that are few whatever the report's size (one per
// header_from and known selector, and at most 65,536 pair buckets), which
// ClickHouse would otherwise sum with three more scans of the staged
// records.
type streamSums struct {
	rollup  orderedSums[rollupKey, rollupSumsRow]
	pairs   *bucketSums
	tooMany bool // past streamSumsKeys: ClickHouse sums them
}

// bucketSums are the sums of each pair bucket, indexed by bucket (1 MiB:
// an index costs a fraction of a map's lookup), and the buckets used in
// the order of their first use.
type bucketSums struct {
	sums [1 << 16]pairSums
	used []uint16
}

// ordered returns the used buckets' sums as appendPairBucketSums takes them.
func (b *bucketSums) ordered() *orderedSums[uint16, pairSums] {
	o := &orderedSums[uint16, pairSums]{}
	if b == nil {
		return o
	}
	for _, k := range b.used {
		*o.at(k) = b.sums[k]
	}
	return o
}

// add sums the records of cols.
func (z *streamSums) add(cols *recordColumns) {
	if z.tooMany {
		return
	}
	if z.pairs == nil {
		z.pairs = &bucketSums{}
	}
	for i := range cols.len() {
		addRollupSums(&z.rollup, cols, i)
		if cols.recordError[i] == "" {
			k := pairBucket(cols.sourceIP[i], cols.headerFrom[i])
			r := &z.pairs.sums[k]
			if *r == (pairSums{}) {
				z.pairs.used = append(z.pairs.used, k)
			}
			r.records++
			r.messages += cols.messageCount[i]
		}
	}
	if len(z.rollup.order) > streamSumsKeys {
		*z = streamSums{tooMany: true}
	}
}

// stagedFill is how one rollup table's staging table of a large report is
// filled: the INSERT ... SELECTs ClickHouse runs on the staged records,
// and send, which inserts what the writer summed itself (the marker row,
// and the data rows it has).
type stagedFill struct {
	selects []string
	send    func(ctx context.Context, staging string) error
}

// stagedFillOf says how t's staging table is filled for the large report
// rep with streamed sums z: every marker row is sent from here (the report
// is known), aggregate_rollup's and aggregate_pair_buckets' data rows too
// unless z has too many; aggregate_sources' data rows (about one per
// record) are copied by ClickHouse from the staged records
// (sourcesStagedSelect), aggregate_outcomes' summed by it.
func (s *Store) stagedFillOf(rt route, t rollupTable, rep *reportFields, z *streamSums) stagedFill {
	data := t.selects[:len(t.selects)-1] // every table's last select is its marker's
	switch t.name {
	case sourcesTable.name:
		return stagedFill{[]string{sourcesStagedSelect}, func(ctx context.Context, staging string) error {
			return sendRowsTo(ctx, rt, staging, t.columns, t.name+" marker", func(b driver.Batch) (int, error) {
				return 1, appendSourcesMarker(b, rep)
			})
		}}
	case outcomesTable.name:
		return stagedFill{data, func(ctx context.Context, staging string) error {
			return sendRowsTo(ctx, rt, staging, outcomesSentColumns, t.name+" marker", func(b driver.Batch) (int, error) {
				return 1, appendOutcomesMarker(b, rep)
			})
		}}
	case pairBucketsTable.name:
		sums := z.pairs.ordered()
		selects := []string(nil)
		if z.tooMany {
			sums, selects = &orderedSums[uint16, pairSums]{}, data
		}
		return stagedFill{selects, func(ctx context.Context, staging string) error {
			return sendRowsTo(ctx, rt, staging, t.columns, t.name, func(b driver.Batch) (int, error) {
				return appendPairBucketSums(b, rep, sums)
			})
		}}
	default: // aggregate_rollup
		sums := &z.rollup
		selects := []string(nil)
		if z.tooMany {
			sums, selects = &orderedSums[rollupKey, rollupSumsRow]{}, data
		}
		return stagedFill{selects, func(ctx context.Context, staging string) error {
			return sendRowsTo(ctx, rt, staging, rollupColumnList, "rollup", func(b driver.Batch) (int, error) {
				return appendRollupSumRows(b, rep, sums)
			})
		}}
	}
}

// stageRollupsOf sums a large report's staged records into a new staging
// table per rollup table (in commit order, to attach after the records),
// with what the writer summed itself as they streamed by (stagedFillOf).
// The INSERT ... SELECTs run at once, each on a connection of its own: each
// spends most of its time sorting and writing its rows, one thread each, so
// a server with several cores does them side by side. On error it drops
// what it created.
func (s *Store) stageRollupsOf(ctx context.Context, rt route, recordsStaging string, rep *reportFields, z *streamSums) ([]stagedRollup, error) {
	var l []stagedRollup
	for _, t := range rollupTables {
		rs, err := s.createRollupStaging(ctx, rt, t)
		if err != nil {
			s.dropStagedRollups(ctx, rt, l)
			return nil, err
		}
		l = append(l, stagedRollup{t, rs})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for _, x := range l {
		f := s.stagedFillOf(rt, x.t, rep, z)
		for _, sel := range f.selects {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.fillRollupSelect(ctx, rt, x.t, sel, x.staging, recordsStaging, dataKeySQL(rep.dataKey), "1"); err != nil {
					fail(err)
				}
			}()
		}
		if err := f.send(ctx, x.staging); err != nil {
			fail(err)
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.dropStagedRollups(ctx, rt, l)
		return nil, err
	}
	return l, nil
}

func (s *Store) dropStagedRollups(ctx context.Context, rt route, l []stagedRollup) {
	for _, x := range l {
		s.dropTable(ctx, rt, x.staging)
	}
}

// attachRollups attaches staged rollups in order, each followed by its
// table's failpoint.
func (s *Store) attachRollups(ctx context.Context, rt route, l []stagedRollup) error {
	for _, x := range l {
		if err := s.attachRollup(ctx, rt, x.t, x.staging); err != nil {
			return err
		}
		if x.t.after != "" {
			failpoint(x.t.after)
		}
	}
	return nil
}

// hasMarker tells whether table t holds the marker row of a report (the
// one row of a table's report that counts it: report_count 1).
func (s *Store) hasMarker(ctx context.Context, rt route, t rollupTable, domain string, begin time.Time, key string) (bool, error) {
	var n uint64
	err := rt.conn.QueryRow(ctx, `SELECT count() FROM `+rt.table(t.name)+`
		WHERE report_count > 0 AND policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?`,
		domain, unixSeconds(begin), key).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking for its rows in %s: %w", t.name, err)
	}
	return n > 0, nil
}

// completeRollup writes the rollups of a report whose records are stored
// (by a writer that died before the report row): each rollup table whose
// marker row of the report is missing is summed from the stored records.
// aggregate_rollup's marker is written last, so once it is there every
// rollup is.
func (s *Store) completeRollup(ctx context.Context, rt route, domain string, begin time.Time, key, dataKey string) error {
	if ok, err := s.hasMarker(ctx, rt, rollupTableDef, domain, begin, key); err != nil || ok {
		return err
	}
	for _, t := range rollupTables {
		ok, err := s.hasMarker(ctx, rt, t, domain, begin, key)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		s.log.Info("writing the rollup of stored records", "table", t.name, "report_key", key)
		rs, err := s.createRollupStaging(ctx, rt, t)
		if err != nil {
			return err
		}
		err = s.fillRollupStaging(ctx, rt, t, rs, "aggregate_records", dataKeySQL(dataKey),
			"policy_domain = ? AND date_begin = toDateTime(?) AND report_key = ?", domain, unixSeconds(begin), key)
		if err == nil {
			err = s.attachRollup(ctx, rt, t, rs)
		}
		s.dropTable(ctx, rt, rs)
		if err != nil {
			return err
		}
	}
	return nil
}

var partitionRe = regexp.MustCompile(`^[0-9]{6}$`)

// RebuildRollup recomputes the rollup tables (rollupTables) from
// aggregate_records, one monthly partition at a time (partition IDs as
// "202611"; nil: every partition of any of them). Each partition is summed
// into a staging table and replaces the table's partition at once
// (REPLACE PARTITION), so readers see the old or the new sums, never a
// mix. A partition without records is dropped from the rollup. In cluster
// mode every shard rebuilds its local tables.
//
// Run it with no writer at work on the same database (stop dmarcd serve,
// or run it before): a report committed into a partition while it is
// rebuilt may be left out of its rollup.
func (s *Store) RebuildRollup(ctx context.Context, partitions []string) error {
	for _, p := range partitions {
		if !partitionRe.MatchString(p) {
			return fmt.Errorf("store: rollup rebuild: partition %q: want YYYYMM", p)
		}
	}
	// In cluster mode each shard rebuilds its own local tables from its own
	// records (a report's records and sums live on one shard).
	return s.eachShard(ctx, func(ctx context.Context, rt route) error {
		parts := partitions
		if parts == nil {
			seen := map[string]bool{}
			tables := []string{"aggregate_records"}
			for _, t := range rollupTables {
				tables = append(tables, t.name)
			}
			for _, t := range tables {
				l, err := s.partitions(ctx, rt, rt.table(t))
				if err != nil {
					return err
				}
				for _, p := range l {
					if !seen[p] {
						seen[p] = true
						parts = append(parts, p)
					}
				}
			}
			slices.Sort(parts)
		}
		for _, p := range parts {
			if err := s.rebuildPartition(ctx, rt, p); err != nil {
				return fmt.Errorf("store: rollup rebuild: partition %s: %w", p, err)
			}
		}
		return nil
	})
}

func (s *Store) rebuildPartition(ctx context.Context, rt route, p string) error {
	// Day by day: a month of records grouped at once may need more memory
	// than a query may use.
	var days []string
	err := rt.eachRow(ctx, "SELECT DISTINCT toString(toDate(date_begin)) AS d FROM "+rt.table("aggregate_records")+" WHERE toYYYYMM(date_begin) = "+p+" ORDER BY d",
		nil, func(scan func(...any) error) error {
			var d string
			err := scan(&d)
			days = append(days, d)
			return err
		})
	if err != nil {
		return fmt.Errorf("listing days: %w", err)
	}
	for _, t := range rollupTables {
		if err := s.rebuildTablePartition(ctx, rt, t, p, days); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) rebuildTablePartition(ctx context.Context, rt route, t rollupTable, p string, days []string) error {
	start := time.Now()
	rs, err := s.createRollupStaging(ctx, rt, t)
	if err != nil {
		return err
	}
	defer s.dropTable(ctx, rt, rs)
	for _, d := range days {
		where := fmt.Sprintf("toYYYYMM(date_begin) = %s AND toDate(date_begin) = toDate('%s')", p, d)
		if err := s.fillRollupStaging(ctx, rt, t, rs, "aggregate_records", rebuildDataKey(rt), where); err != nil {
			return err
		}
	}
	parts, err := s.partitions(ctx, rt, rs)
	if err != nil {
		return err
	}
	var q string
	if len(parts) == 0 {
		q = fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID '%s'", rt.table(t.name), p)
	} else {
		q = fmt.Sprintf("ALTER TABLE %s REPLACE PARTITION ID '%s' FROM %s", rt.table(t.name), p, rs)
	}
	if err := rt.conn.Exec(ctx, q); err != nil {
		return err
	}
	s.log.Info("rebuilt rollup partition", "table", t.name, "partition", p, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// RollupGaps lists, as "table/YYYYMM", the monthly partitions that hold
// records but no rows of a rollup table (rollupTables): records stored by a version without that table, or
// sums dropped by hand. Dashboards read the rollups, so those months look
// empty there until `dmarcd rollup rebuild` (RebuildRollup) fills them. It
// also lists the months of aggregate_outcomes whose source IP arrays
// (migration 0011) hold fewer IPs than the row's sketch counts: rows
// written before that migration, whose source counts read too low until
// the rebuild. In cluster mode every shard is checked.
func (s *Store) RollupGaps(ctx context.Context) ([]string, error) {
	var gaps []string
	err := s.eachShard(ctx, func(ctx context.Context, rt route) error {
		records, err := s.partitions(ctx, rt, rt.table("aggregate_records"))
		if err != nil {
			return err
		}
		for _, t := range rollupTables {
			have, err := s.partitions(ctx, rt, rt.table(t.name))
			if err != nil {
				return err
			}
			for _, p := range records {
				if !slices.Contains(have, p) && !slices.Contains(gaps, t.name+"/"+p) {
					gaps = append(gaps, t.name+"/"+p)
				}
			}
		}
		// Stale IP arrays: the sketch is exact up to 65,536 IPs and within
		// about 2 % beyond, and a 32-bit hash collision costs an array one
		// IP; a row from before the migration holds one IP.
		return rt.eachRow(ctx, `SELECT DISTINCT toString(toYYYYMM(date_begin)) FROM `+rt.table("aggregate_outcomes")+`
			WHERE report_count = 0 AND finalizeAggregation(source_ip_state) > length(source_ipsMap.ip_hash) * 1.1 + 1`,
			nil, func(scan func(...any) error) error {
				var p string
				if err := scan(&p); err != nil {
					return err
				}
				if g := "aggregate_outcomes/" + p; !slices.Contains(gaps, g) {
					gaps = append(gaps, g)
				}
				return nil
			})
	})
	slices.Sort(gaps)
	return gaps, err
}

// appendOutcomesMarker appends the report's marker row of
// aggregate_outcomes (outcomesSentColumns), as outcomesMarkerSelect makes
// it: the server fills the empty sketch and IP hashes from its empty
// source_ip.
func appendOutcomesMarker(b driver.Batch, rep *reportFields) error {
	none := []string{}
	return b.Append(rep.domain, rep.begin, "", "", uint8(0), uint8(0), uint8(0), uint8(0), uint8(0),
		none, none, none, none, none, none, none, rep.key, uint64(1), uint64(0), uint64(0), "", []uint64{})
}
