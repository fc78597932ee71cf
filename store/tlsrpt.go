package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// WriteTLSRPT stores one SMTP TLS report (RFC 8460) exactly once, keyed by
// tlsrpt.Key(r): one row per policy in tlsrpt_policies, one row per failure
// detail in tlsrpt_failures, then one row in tlsrpt_reports. The result has
// Records the number of policies and Messages the sum of their successful
// and failed sessions, for a duplicate too.
//
// The protocol (docs/schema.md, "Exactly once"), serialized per key in this
// process:
//   - a report row with the key exists: duplicate, nothing is written;
//   - each child table that has no row with the key gets all of the
//     report's rows for it in one INSERT (one block in one partition: every
//     row carries the report's date_begin); a table that has rows with the
//     key was written by an attempt that died before the report row, and is
//     left as it is;
//   - then the report row.
//
// A report holds at most MaxBatchRows policies and as many failure details
// (far more than the parser's 20 MiB of JSON can hold), so that each INSERT
// stays one block.
//
// An error caused by the report itself (more rows than one INSERT takes, a
// value ClickHouse refuses: see refused.go) carries parse.StoreRefused.
func (s *Store) WriteTLSRPT(ctx context.Context, r *tlsrpt.Report, meta InputMeta) (WriteResult, error) {
	res, err := s.writeTLSRPT(ctx, r, meta)
	return res, refused(err)
}

func (s *Store) writeTLSRPT(ctx context.Context, r *tlsrpt.Report, meta InputMeta) (WriteResult, error) {
	key := tlsrpt.Key(r)
	t := newTLSRows(key, r)
	res := WriteResult{ReportKey: key, Records: len(r.Policies), Messages: t.successful + t.failed}
	unlock := s.locks.lock(key)
	defer unlock()
	release, err := s.claim(ctx, s.routeOf(key), key) // against other processes (cluster.go)
	if err != nil {
		return res, err
	}
	defer release()

	n, err := s.tlsrptCount(ctx, "tlsrpt_reports", t)
	if err != nil {
		return res, err
	}
	if n > 0 {
		res.Status = StatusDuplicate
		return res, nil
	}
	if err := s.writeTLSRPTChildren(ctx, t); err != nil {
		return res, err
	}
	err = s.insertOne(ctx, `INSERT INTO tlsrpt_reports (report_key, organization_name, contact_info,
		report_id, date_begin, date_end, policy_count, failure_count, successful_sessions,
		failed_sessions, source, input_name, input_sha256, ingested_at, auth_result, auth_detail, input_part)`,
		key, r.OrganizationName, r.ContactInfo, r.ReportID, t.begin, t.end,
		uint32(len(r.Policies)), uint32(t.failures), t.successful, t.failed,
		meta.Source, meta.InputName, meta.InputSHA256, time.Now().UTC(), meta.authResult(), meta.AuthDetail, meta.InputPart)
	if err != nil {
		return res, fmt.Errorf("tls report %s (%s, %s): writing report row: %w", key, quoteField(r.OrganizationName), quoteField(r.ReportID), err)
	}
	res.Status = StatusStored
	return res, nil
}

// tlsRows is a TLS report with what its rows share.
type tlsRows struct {
	key                string
	r                  *tlsrpt.Report
	begin, end         time.Time // as stored: UTC seconds within DateTime's range
	successful, failed uint64
	failures           int // failure details in all policies
}

func newTLSRows(key string, r *tlsrpt.Report) *tlsRows {
	t := &tlsRows{
		key:   key,
		r:     r,
		begin: time.Unix(int64(unixSeconds(r.Begin)), 0).UTC(),
		end:   time.Unix(int64(unixSeconds(r.End)), 0).UTC(),
	}
	for _, p := range r.Policies {
		t.successful += p.Successful
		t.failed += p.Failed
		t.failures += len(p.Failures)
	}
	return t
}

// tlsrptCount counts the rows of a report in one of the tlsrpt tables.
func (s *Store) tlsrptCount(ctx context.Context, table string, t *tlsRows) (uint64, error) {
	var n uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM "+table+
		" WHERE date_begin = toDateTime(?) AND report_key = ?", unixSeconds(t.begin), t.key).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("tls report %s: looking for its rows in %s: %w", t.key, table, err)
	}
	return n, nil
}

// writeTLSRPTChildren writes the policy rows and the failure rows of a report,
// each table in one INSERT, skipping a table that already has rows with the
// report's key. It is the first step of WriteTLSRPT; a crash after it leaves
// a report without its report row, which the next WriteTLSRPT completes.
func (s *Store) writeTLSRPTChildren(ctx context.Context, t *tlsRows) error {
	if len(t.r.Policies) > MaxBatchRows || t.failures > MaxBatchRows {
		return parse.Errorf(parse.StoreRefused, "tls report %s: %d policies and %d failure details: more than %d rows cannot be written at once",
			t.key, len(t.r.Policies), t.failures, MaxBatchRows)
	}
	for _, step := range []struct {
		table string
		rows  int
		write func(context.Context, *tlsRows) error
	}{
		{"tlsrpt_policies", len(t.r.Policies), s.insertTLSPolicies},
		{"tlsrpt_failures", t.failures, s.insertTLSFailures},
	} {
		if step.rows == 0 {
			continue
		}
		n, err := s.tlsrptCount(ctx, step.table, t)
		if err != nil {
			return err
		}
		if n > 0 {
			if n != uint64(step.rows) {
				s.log.Warn("stored rows differ from the report's", "table", step.table, "report_key", t.key, "stored", n, "rows", step.rows)
			} else {
				s.log.Info("completing tls report whose rows are stored", "table", step.table, "report_key", t.key, "rows", n)
			}
			continue
		}
		if err := step.write(ctx, t); err != nil {
			return fmt.Errorf("tls report %s (%s, %s): inserting into %s: %w", t.key, quoteField(t.r.OrganizationName), quoteField(t.r.ReportID), step.table, err)
		}
	}
	return nil
}

// insertTLSPolicies writes one row per policy, in one INSERT.
func (s *Store) insertTLSPolicies(ctx context.Context, t *tlsRows) error {
	b, err := s.conn.PrepareBatch(ctx, `INSERT INTO tlsrpt_policies (report_key, report_id,
		organization_name, date_begin, date_end, policy_index, policy_type, policy_strings,
		policy_domain, mx_hosts, successful_sessions, failed_sessions)`)
	if err != nil {
		return err
	}
	r := t.r
	for i, p := range r.Policies {
		err := b.Append(t.key, r.ReportID, r.OrganizationName, t.begin, t.end, uint32(i), p.Type,
			nonNilStrings(p.Strings), p.Domain, nonNilStrings(p.MXHosts), p.Successful, p.Failed)
		if err != nil {
			b.Abort()
			return fmt.Errorf("policy %d: %w", i, err)
		}
	}
	return b.Send()
}

// insertTLSFailures writes one row per failure detail of every policy, in
// one INSERT.
func (s *Store) insertTLSFailures(ctx context.Context, t *tlsRows) error {
	b, err := s.conn.PrepareBatch(ctx, `INSERT INTO tlsrpt_failures (report_key, report_id,
		organization_name, date_begin, date_end, policy_index, failure_index, policy_type,
		policy_domain, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo,
		receiving_ip, failed_session_count, additional_information, failure_reason_code)`)
	if err != nil {
		return err
	}
	r := t.r
	for i, p := range r.Policies {
		for j, f := range p.Failures {
			err := b.Append(t.key, r.ReportID, r.OrganizationName, t.begin, t.end, uint32(i), uint32(j),
				p.Type, p.Domain, f.ResultType, f.SendingMTAIP, f.ReceivingMXHostname, f.ReceivingMXHelo,
				f.ReceivingIP, f.FailedSessions, f.AdditionalInformation, f.FailureReasonCode)
			if err != nil {
				b.Abort()
				return fmt.Errorf("policy %d, failure detail %d: %w", i, j, err)
			}
		}
	}
	return b.Send()
}
