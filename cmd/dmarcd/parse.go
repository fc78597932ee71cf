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

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// jsonRecord is a record as `dmarcd parse --json` prints it: the report's
// values plus the alignment dmarcd recomputed.
type jsonRecord struct {
	*aggregate.Record
	HeaderFromOrg      string `json:"header_from_org"`
	DKIMAlignedRelaxed bool   `json:"dkim_aligned_relaxed"`
	DKIMAlignedStrict  bool   `json:"dkim_aligned_strict"`
	SPFAlignedRelaxed  bool   `json:"spf_aligned_relaxed"`
	SPFAlignedStrict   bool   `json:"spf_aligned_strict"`
	DMARCPass          bool   `json:"dmarc_pass"`
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
	xl, al := limitsFrom(cfg)
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	var cw *csv.Writer
	if *asCSV {
		cw = csv.NewWriter(out)
		defer cw.Flush()
		_ = cw.Write(csvHeader)
	}
	failed := false
	err = ingest.FileInputs(ctx, fs.Args(), xl.MaxMessageBytes, func(in ingest.Input) error {
		rc, err := in.Open()
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(err.Error()))
			failed = true
			return nil
		}
		defer rc.Close()
		n := 0
		werr := extract.Walk(rc, xl, func(pl *extract.Payload) error {
			if pl.Kind != extract.Aggregate {
				fmt.Fprintf(e.stderr, "%s: %s: %s report (parse prints aggregate reports)\n", valid.Printable(in.Name), valid.Printable(pl.Where), pl.Kind)
				return nil
			}
			n++
			if err := printReport(out, cw, in.Name, pl, al); err != nil {
				fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(join(pl.Where, err.Error())))
				failed = true
			}
			return nil
		})
		if werr != nil && n == 0 {
			fmt.Fprintf(e.stderr, "%s: %s\n", valid.Printable(in.Name), valid.Printable(werr.Error()))
			failed = true
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd parse:", err)
		return exitFail
	}
	if failed {
		return exitFail
	}
	return exitOK
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
	adkim, aspf := align.ParseMode(h.ADKIM.Value), align.ParseMode(h.ASPF.Value)
	if cw == nil {
		hj, _ := json.Marshal(h)
		fmt.Fprintf(w, `{"input":%q,"where":%q,"report_key":%q,"report":%s,"records":[`, input, pl.Where, key, hj)
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
		f := evaluate(rec, adkim, aspf)
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
		rj, _ := json.Marshal(jsonRecord{Record: rec, HeaderFromOrg: f.HeaderFromOrg,
			DKIMAlignedRelaxed: f.DKIMAlignedRelaxed, DKIMAlignedStrict: f.DKIMAlignedStrict,
			SPFAlignedRelaxed: f.SPFAlignedRelaxed, SPFAlignedStrict: f.SPFAlignedStrict, DMARCPass: f.DMARCPass})
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

func evaluate(rec *aggregate.Record, adkim, aspf align.Mode) align.Flags {
	dkim := make([]align.Auth, 0, len(rec.DKIM))
	for _, d := range rec.DKIM {
		dkim = append(dkim, align.Auth{Domain: d.Domain, Result: d.Result})
	}
	spf := make([]align.Auth, 0, len(rec.SPF))
	for _, s := range rec.SPF {
		spf = append(spf, align.Auth{Domain: s.Domain, Result: s.Result, Scope: s.Scope})
	}
	return align.Evaluate(rec.HeaderFrom, dkim, spf, adkim, aspf)
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
