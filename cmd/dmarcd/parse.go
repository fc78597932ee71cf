package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// The JSON that `dmarcd parse --json` prints, one document per report, in
// snake_case like `ingest --json` and the CSV columns (docs/parse-json.md
// is the schema): the report's values as the reporter wrote them (after
// dmarcd's normalisation), an optional element that is absent as null,
// and per record the alignment dmarcd recomputed.
type jsonReport struct {
	Input     string     `json:"input"`
	Where     string     `json:"where"`
	ReportKey string     `json:"report_key"`
	Report    jsonHeader `json:"report"`
	Records   []jsonRec  `json:"records"`
}

// jsonHeader is report_metadata and policy_published (RFC 7489 appendix C,
// RFC 9990 section 4). Optional policy values are null when absent.
type jsonHeader struct {
	Schema           string   `json:"schema"`
	Version          string   `json:"version"`
	OrgName          string   `json:"org_name"`
	Email            string   `json:"email"`
	ExtraContactInfo string   `json:"extra_contact_info"`
	ReportID         string   `json:"report_id"`
	DateBegin        string   `json:"date_begin"`
	DateEnd          string   `json:"date_end"`
	Errors           []string `json:"errors"`
	Generator        string   `json:"generator"`
	PolicyDomain     string   `json:"policy_domain"`
	ADKIM            *string  `json:"adkim"`
	ASPF             *string  `json:"aspf"`
	P                *string  `json:"p"`
	SP               *string  `json:"sp"`
	NP               *string  `json:"np"`
	Pct              *string  `json:"pct"`
	Fo               *string  `json:"fo"`
	Testing          *string  `json:"testing"`
	DiscoveryMethod  *string  `json:"discovery_method"`
}

// jsonRec is one record with its recomputed alignment.
type jsonRec struct {
	RecordIndex        int          `json:"record_index"`
	SourceIP           string       `json:"source_ip"`
	MessageCount       uint64       `json:"message_count"`
	Disposition        string       `json:"disposition"`
	DMARCDKIM          string       `json:"dmarc_dkim"`
	DMARCSPF           string       `json:"dmarc_spf"`
	Reasons            []jsonReason `json:"reasons"`
	HeaderFrom         string       `json:"header_from"`
	EnvelopeFrom       *string      `json:"envelope_from"`
	EnvelopeTo         *string      `json:"envelope_to"`
	DKIM               []jsonDKIM   `json:"dkim"`
	SPF                []jsonSPF    `json:"spf"`
	HeaderFromOrg      string       `json:"header_from_org"`
	DKIMAlignedRelaxed bool         `json:"dkim_aligned_relaxed"`
	DKIMAlignedStrict  bool         `json:"dkim_aligned_strict"`
	SPFAlignedRelaxed  bool         `json:"spf_aligned_relaxed"`
	SPFAlignedStrict   bool         `json:"spf_aligned_strict"`
	DMARCPass          bool         `json:"dmarc_pass"`
	RecordError        string       `json:"record_error"`
}

type jsonReason struct {
	Type    string `json:"type"`
	Comment string `json:"comment"`
}

type jsonDKIM struct {
	Domain      string `json:"domain"`
	Selector    string `json:"selector"`
	Result      string `json:"result"`
	HumanResult string `json:"human_result"`
}

type jsonSPF struct {
	Domain      string `json:"domain"`
	Scope       string `json:"scope"`
	Result      string `json:"result"`
	HumanResult string `json:"human_result"`
}

// opt is an optional value as JSON: null when the report left it out.
func opt(o aggregate.Opt) *string {
	if !o.Set {
		return nil
	}
	v := o.Value
	return &v
}

func headerJSON(h *aggregate.Header) jsonHeader {
	return jsonHeader{Schema: h.Schema, Version: h.Version, OrgName: h.OrgName, Email: h.Email,
		ExtraContactInfo: h.ExtraContactInfo, ReportID: h.ReportID, DateBegin: h.Begin.Format(time.RFC3339),
		DateEnd: h.End.Format(time.RFC3339), Errors: nonNil(h.Errors), Generator: h.Generator, PolicyDomain: h.Domain,
		ADKIM: opt(h.ADKIM), ASPF: opt(h.ASPF), P: opt(h.P), SP: opt(h.SP), NP: opt(h.NP), Pct: opt(h.Pct),
		Fo: opt(h.Fo), Testing: opt(h.Testing), DiscoveryMethod: opt(h.DiscoveryMethod)}
}

func recordJSON(f *enrich.Record) jsonRec {
	r := f.Record
	j := jsonRec{RecordIndex: r.Index, SourceIP: r.SourceIP, MessageCount: r.Count, Disposition: r.Disposition,
		DMARCDKIM: r.EvalDKIM, DMARCSPF: r.EvalSPF, Reasons: []jsonReason{}, HeaderFrom: r.HeaderFrom,
		EnvelopeFrom: opt(r.EnvelopeFrom), EnvelopeTo: opt(r.EnvelopeTo), DKIM: []jsonDKIM{}, SPF: []jsonSPF{},
		HeaderFromOrg: f.HeaderFromOrg, DKIMAlignedRelaxed: f.DKIMAlignedRelaxed, DKIMAlignedStrict: f.DKIMAlignedStrict,
		SPFAlignedRelaxed: f.SPFAlignedRelaxed, SPFAlignedStrict: f.SPFAlignedStrict, DMARCPass: f.DMARCPass,
		RecordError: r.Invalid}
	for _, x := range r.Reasons {
		j.Reasons = append(j.Reasons, jsonReason{x.Type, x.Comment})
	}
	for _, d := range r.DKIM {
		j.DKIM = append(j.DKIM, jsonDKIM{d.Domain, d.Selector, d.Result, d.HumanResult})
	}
	for _, x := range r.SPF {
		j.SPF = append(j.SPF, jsonSPF{x.Domain, x.Scope, x.Result, x.HumanResult})
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var csvHeader = []string{"input", "report_key", "org_name", "report_id", "policy_domain", "date_begin", "date_end",
	"p", "sp", "adkim", "aspf", "record_index", "source_ip", "message_count", "disposition", "dmarc_dkim", "dmarc_spf",
	"header_from", "envelope_from", "dkim_domains", "dkim_results", "spf_domains", "spf_results",
	"dkim_aligned_relaxed", "dkim_aligned_strict", "spf_aligned_relaxed", "spf_aligned_strict", "dmarc_pass", "record_error"}

func runParse(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "parse")
	asJSON := fs.Bool("json", false, "one JSON document per report (default)")
	asCSV := fs.Bool("csv", false, "one CSV row per record")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 || (*asJSON && *asCSV) {
		fmt.Fprintln(e.stderr, "usage: dmarcd parse [--json|--csv] PATH...")
		return exitUsage
	}
	cfg, err := e.config()
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd:", err)
		return exitUsage
	}
	lim := wire.LimitsFrom(cfg)
	xl, al := lim.Extract, lim.Aggregate
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	var cw *csv.Writer
	if *asCSV {
		cw = csv.NewWriter(out)
		defer cw.Flush()
		_ = cw.Write(csvHeader)
	}
	t := &parseTally{}
	for in, err := range ingest.FileInputs(ctx, fs.Args(), xl.MaxMessageBytes) {
		if err != nil {
			fmt.Fprintln(e.stderr, "dmarcd parse:", err)
			return exitFail
		}
		t.input(e, out, cw, in, xl, al)
	}
	if t.failed || (t.skipped && t.printed == 0) {
		return exitFail
	}
	return exitOK
}

// parseTally is what dmarcd parse made of its inputs so far.
type parseTally struct {
	failed  bool // an input or report could not be read
	skipped bool // a report of another kind than aggregate was found
	printed int  // aggregate reports printed
}

// input prints the aggregate reports of one input, pulled one at a time,
// and says on stderr what else it held or why it held none.
func (t *parseTally) input(e *env, out io.Writer, cw *csv.Writer, in ingest.Input, xl extract.Limits, al aggregate.Limits) {
	rc, err := in.Open()
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(err.Error()))
		t.failed = true
		return
	}
	defer rc.Close()
	x := extract.NewReader(rc, xl)
	defer x.Close()
	for {
		pl, err := x.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(err.Error()))
			t.failed = true
			return
		}
		if pl.Kind != extract.Aggregate {
			fmt.Fprintln(e.stderr, notAggregate(in.Name, pl))
			t.skipped = true
			continue
		}
		t.printed++
		if err := printReport(out, cw, in.Name, pl, al); err != nil {
			fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(join(pl.Where, err.Error())))
			t.failed = true
		}
	}
}

// notAggregate says plainly that parse prints aggregate reports only, what
// the input held instead, and what to do with it.
func notAggregate(name string, pl *extract.Payload) string {
	what := map[extract.Kind]string{extract.TLSRPT: "an SMTP TLS report (RFC 8460)", extract.Failure: "a DMARC failure report"}[pl.Kind]
	if what == "" {
		what = "a " + string(pl.Kind) + " report"
	}
	subject := "it"
	if pl.Where != "" {
		subject = valid.Printable(pl.Where)
	}
	return fmt.Sprintf("%s: %s is %s, not printed: dmarcd parse prints DMARC aggregate reports only (dmarcd ingest stores the other kinds)",
		valid.Printable(name), subject, what)
}

func join(where, msg string) string {
	if where == "" {
		return msg
	}
	return where + ": " + msg
}

func printReport(w io.Writer, cw *csv.Writer, input string, pl *extract.Payload, al aggregate.Limits) error {
	dec := aggregate.NewDecoder(pl.R, al)
	h, err := dec.Header()
	if err != nil {
		return err
	}
	key := aggregate.Key(h)
	enricher := enrich.Aggregate(h) // alignment as ingest computes it
	if cw == nil {
		// The records are streamed: a report of a million records is
		// never held whole. The envelope is jsonReport's.
		hj, _ := json.Marshal(headerJSON(h))
		in, _ := json.Marshal(input)
		wh, _ := json.Marshal(pl.Where)
		fmt.Fprintf(w, `{"input":%s,"where":%s,"report_key":"%s","report":%s,"records":[`, in, wh, key, hj)
	}
	for i := 0; ; i++ {
		rec, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if cw == nil {
				fmt.Fprint(w, "]}\n")
			}
			return err
		}
		f := enricher.Record(rec)
		if cw != nil {
			_ = cw.Write(csvCells(input, key, h.OrgName, h.ReportID, h.Domain, h.Begin.Format(time.RFC3339), h.End.Format(time.RFC3339),
				h.P.Value, h.SP.Value, h.ADKIM.Value, h.ASPF.Value, strconv.Itoa(rec.Index), rec.SourceIP,
				strconv.FormatUint(rec.Count, 10), rec.Disposition, rec.EvalDKIM, rec.EvalSPF, rec.HeaderFrom,
				rec.EnvelopeFrom.Value, joinDKIM(rec, "domain"), joinDKIM(rec, "result"), joinSPF(rec, "domain"),
				joinSPF(rec, "result"), b(f.DKIMAlignedRelaxed), b(f.DKIMAlignedStrict), b(f.SPFAlignedRelaxed),
				b(f.SPFAlignedStrict), b(f.DMARCPass), rec.Invalid))
			continue
		}
		if i > 0 {
			fmt.Fprint(w, ",")
		}
		rj, _ := json.Marshal(recordJSON(f))
		w.Write(rj)
	}
	if cw == nil {
		fmt.Fprint(w, "]}\n")
	}
	return nil
}

// csvCells makes every cell safe for a spreadsheet: report values are
// attacker controlled, and a cell beginning with '=' (=HYPERLINK(...)), '+',
// '-' or '@' is a formula to Excel, LibreOffice and Google Sheets.
func csvCells(cells ...string) []string {
	for i, c := range cells {
		cells[i] = valid.CSVCell(c)
	}
	return cells
}

func b(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func joinDKIM(r *aggregate.Record, field string) string {
	var s []string
	for _, d := range r.DKIM {
		if field == "domain" {
			s = append(s, d.Domain)
		} else {
			s = append(s, d.Result)
		}
	}
	return strings.Join(s, " ")
}

func joinSPF(r *aggregate.Record, field string) string {
	var s []string
	for _, d := range r.SPF {
		if field == "domain" {
			s = append(s, d.Domain)
		} else {
			s = append(s, d.Result)
		}
	}
	return strings.Join(s, " ")
}
