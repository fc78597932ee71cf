package ingest

// Status is the fate of one input. The words are a contract: `dmarcd ingest
// --json` prints them, scripts and metrics read them.
type Status string

const (
	Stored    Status = "stored"    // at least one report in it was new and is now committed
	Duplicate Status = "duplicate" // every report in it was already stored
	Invalid   Status = "invalid"   // nothing usable in it; set aside with its reason
	Error     Status = "error"     // could not be processed now (e.g. ClickHouse unreachable); a retry may succeed
)

// Outcome is what happened to one input: one JSON object per line of
// `dmarcd ingest --json`. The json keys are a stable contract.
type Outcome struct {
	Input     string   `json:"input"`
	Kind      string   `json:"kind"` // aggregate | failure | tlsrpt | none
	Status    Status   `json:"status"`
	Reports   int      `json:"reports"`
	Records   int      `json:"records"`
	Messages  uint64   `json:"messages"`
	ReportIDs []string `json:"report_ids"`
	// InvalidRecords counts the records of the stored (or duplicate)
	// aggregate reports that were set aside as unusable (an invalid source
	// IP or count): stored with their record_error, counted in Records.
	// When some were, ReasonCode is invalid_value and Reason says how many
	// and why the first one was, unless a report of the input was itself
	// set aside (its code and reason then).
	InvalidRecords int      `json:"invalid_records,omitempty"`
	ReasonCode     string   `json:"reason_code,omitempty"`
	Reason         string   `json:"reason,omitempty"`
	ReportKeys     []string `json:"report_keys"`
	SHA256         string   `json:"sha256"`
	Size           int64    `json:"size"`
	// ReadPartially is set when reading stopped once the input was judged
	// (invalid, over a limit): SHA256 and Size then cover only the bytes read.
	ReadPartially bool `json:"read_partially,omitempty"`
	// Auth is how the mail that carried the stored reports authenticated:
	// pass, fail or unverified (enrich/mailauth.go); absent when no report was
	// stored.
	Auth       string `json:"auth,omitempty"`
	AuthDetail string `json:"auth_detail,omitempty"`
	// Lenient lists what was read leniently rather than set aside: MIME
	// header lines repaired (`part 2: header line "name=..." is not a
	// field: read as a continuation of ...`) and misspelt report elements
	// read as the container they are nearest to (`report X: <data_range>
	// read as <date_range>`); absent when none were. Hostile bytes escaped.
	Lenient []string `json:"lenient,omitempty"`
}

// maxLenientNotes bounds Outcome.Lenient (each source bounds its own notes
// too: extract notes at most 16 repairs an input, aggregate 8 renames a
// report).
const maxLenientNotes = 32
