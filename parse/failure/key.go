package failure

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Key returns the identity of a failure report for exactly-once storage.
// ARF has no report identifier, so the key is the hex SHA-256 of four
// values, each followed by a 0x00 byte:
//
//  1. the reporter: the Reporting-MTA name, else the domain of the report
//     email's From (ReporterDomain);
//  2. the original message: its Message-ID, else "sha256:" and the hash of
//     its header block (Original.HeaderHash, computed by Parse);
//  3. the Arrival-Date as Unix seconds, or its raw text when it did not
//     parse;
//  4. the Source-IP.
//
// Two deliveries of one report have the same key; so do a report and the
// same report redacted, since Redact changes none of these values. A
// report with none of the four has the key of the empty tuple.
func Key(r *Report) string {
	reporter := r.ReportingMTA
	if reporter == "" {
		reporter = r.ReporterDomain
	}
	orig := strings.TrimSpace(r.Original.MessageID)
	if orig == "" && r.Original.HeaderHash != "" {
		orig = "sha256:" + r.Original.HeaderHash
	}
	arrival := strings.TrimSpace(r.ArrivalDateRaw)
	if !r.ArrivalDate.IsZero() {
		arrival = strconv.FormatInt(r.ArrivalDate.Unix(), 10)
	}
	h := sha256.New()
	for _, s := range []string{strings.ToLower(reporter), orig, arrival, r.SourceIP} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
