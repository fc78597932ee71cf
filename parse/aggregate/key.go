package aggregate

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Key returns the identity of a report: the hex SHA-256 of the normalised
// tuple (reporter, report_id, policy domain, begin, end), the fields a re-sent
// or duplicated report shares (docs/standards.md §6.6 item 44; RFC 9990
// §3.5.2).
//
//   - reporter: org_name trimmed and lower-cased, or the domain of the email
//     address when org_name is empty (docs/standards.md §6.4 item 28);
//   - report_id trimmed;
//   - policy domain lower-cased without a trailing dot;
//   - begin and end as decimal seconds since the epoch.
//
// Fields are separated by a NUL byte, which cannot occur in XML character
// data, so no two different tuples hash the same input.
func Key(h *Header) string {
	reporter := strings.ToLower(strings.TrimSpace(h.OrgName))
	if reporter == "" {
		email := strings.TrimSpace(h.Email)
		if i := strings.LastIndexByte(email, '@'); i >= 0 {
			email = email[i+1:]
		}
		reporter = strings.ToLower(strings.TrimSpace(strings.TrimSuffix(email, ">")))
	}
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h.Domain)), ".")
	buf := make([]byte, 0, 128)
	buf = append(buf, reporter...)
	buf = append(buf, 0)
	buf = append(buf, strings.TrimSpace(h.ReportID)...)
	buf = append(buf, 0)
	buf = append(buf, domain...)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, h.Begin.Unix(), 10)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, h.End.Unix(), 10)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}
