package hostile

import (
	"fmt"
	"io"
	"strings"

	"github.com/dmarcd/dmarcd/parse"
)

func codes(cs ...parse.Code) Want {
	w := Want{Status: "invalid"}
	for _, c := range cs {
		w.Codes = append(w.Codes, string(c))
	}
	return w
}

// gz returns a writer of the gzip form of the segments that build makes.
func gz(build func(size int64) []seg) func(io.Writer, int64) error {
	return func(w io.Writer, size int64) error { return writeGzip(w, build(size)) }
}

// raw returns a writer of the segments that build makes, as they are.
func raw(build func(size int64) []seg) func(io.Writer, int64) error {
	return func(w io.Writer, size int64) error { return writeRaw(w, build(size)) }
}

// hostileDomain is a policy domain with a newline, a quote, a NUL and SQL:
// what a careless INSERT, log line or label would be hurt by.
const hostileDomain = "example.com\n\"'\x00!x'); SELECT * FROM system.users; --"

// pending lists the attacks that still win on the current code, and why
// (see Attack.Pending). Remove an entry when its fix lands; the test says
// when one is answered.
var pending = map[string]string{}

// All returns every attack, in a fixed order.
func All() []Attack {
	var all []Attack
	all = append(all, aggregateAttacks()...)
	all = append(all, tlsAttacks()...)
	all = append(all, mimeAttacks()...)
	all = append(all, failureAttacks()...)
	all = append(all, transportAttacks()...)
	for i := range all {
		all[i].Pending = pending[all[i].Name]
	}
	return all
}

func aggregateAttacks() []Attack {
	a := func(name, what string, test, bench int64, want Want, build func(int64) []seg) Attack {
		return Attack{Name: name, Kind: Aggregate, What: what, Ext: ".xml.gz", TestSize: test, BenchSize: bench,
			Want: want, write: gz(build)}
	}
	id := func(name string) string { return "hostile-" + name }
	return []Attack{
		a("agg-huge-org-name", "org_name of size bytes (500 MB in a 510 KB gzip)", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.InvalidValue, parse.DecompressionLimit),
			func(n int64) []seg { return agg{org: fill("A", n), reportID: id("agg-huge-org-name")}.doc() }),
		a("agg-whitespace", "size bytes of whitespace between elements (3 MB of gzip expands to 3 GB)", 96*MiB, 3000*MiB,
			codes(parse.DecompressionLimit, parse.TooLarge, parse.XMLSyntax),
			func(n int64) []seg {
				return agg{reportID: id("agg-whitespace"), between: fill(" \n\t", n)}.doc()
			}),
		a("agg-huge-attribute", "an attribute value of size bytes on <feedback>", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.XMLSyntax, parse.DecompressionLimit),
			func(n int64) []seg {
				return agg{reportID: id("agg-huge-attribute"), attr: segs(` x="`, fill("A", n), `"`)}.doc()
			}),
		a("agg-huge-comment", "a comment of size bytes between elements", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.XMLSyntax, parse.DecompressionLimit),
			func(n int64) []seg {
				return agg{reportID: id("agg-huge-comment"), between: segs("<!--", fill("A", n), "-->")}.doc()
			}),
		a("agg-huge-pi", "a processing instruction of size bytes", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.XMLSyntax, parse.DecompressionLimit),
			func(n int64) []seg {
				return agg{reportID: id("agg-huge-pi"), between: segs("<?hostile ", fill("A", n), "?>")}.doc()
			}),
		a("agg-huge-cdata", "a CDATA section of size bytes in report_metadata/extra_contact_info", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.XMLSyntax, parse.DecompressionLimit, parse.InvalidValue),
			func(n int64) []seg {
				return agg{reportID: id("agg-huge-cdata"),
					metaExtra: segs("<extra_contact_info><![CDATA[", fill("A", n), "]]></extra_contact_info>")}.doc()
			}),
		a("agg-huge-unknown-element", "an unknown element holding size bytes of text", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.XMLSyntax, parse.DecompressionLimit),
			func(n int64) []seg {
				return agg{reportID: id("agg-huge-unknown-element"), between: segs("<x_hostile>", fill("A", n), "</x_hostile>")}.doc()
			}),
		a("agg-deep-nesting", "size unknown elements nested in each other", 1_000_000, 10_000_000,
			codes(parse.TooLarge, parse.XMLSyntax),
			func(n int64) []seg {
				return agg{reportID: id("agg-deep-nesting"), between: cat(rep("<a>", n), rep("</a>", n))}.doc()
			}),
		a("agg-many-dkim", "one record with size DKIM results (selectors s0..)", 5_000, 2_000_000,
			codes(parse.TooLarge, parse.InvalidValue),
			func(n int64) []seg {
				return agg{reportID: id("agg-many-dkim"),
					records: record("1", rep("<dkim><domain>example.com</domain><selector>hostile</selector><result>pass</result></dkim>", n))}.doc()
			}),
		a("agg-long-policy-domain", "policy_published/domain of size bytes (300 KiB)", 300<<10, 48*MiB,
			codes(parse.InvalidValue, parse.TooLarge),
			func(n int64) []seg {
				return agg{reportID: id("agg-long-policy-domain"), domain: segs(fill("a.", n-n%2), "com")}.doc()
			}),
		a("agg-hostile-domain", "policy domain with a newline, quotes and SQL (size unused)", 1, 1,
			codes(parse.InvalidValue),
			func(int64) []seg {
				// XML 1.0 cannot carry a NUL at all: leave it out here, or the
				// attack would end at the XML syntax before the domain check.
				d := strings.ReplaceAll(hostileDomain, "\x00", "")
				return agg{reportID: id("agg-hostile-domain"), domain: segs(xmlEscape(d))}.doc()
			}),
		a("agg-future-date", "date_range in 2107 (size unused)", 1, 1, codes(parse.InvalidValue),
			func(int64) []seg {
				return agg{reportID: id("agg-future-date"), begin: "4345804800", end: "4345891199"}.doc()
			}),
		a("agg-end-before-begin", "date_range whose end is a day before its begin (size unused)", 1, 1,
			codes(parse.InvalidValue),
			func(int64) []seg {
				return agg{reportID: id("agg-end-before-begin"), begin: dayEnd, end: "1761868800"}.doc()
			}),
		a("agg-count-overflow", "two records whose counts sum past 2^64 (size unused)", 1, 1,
			codes(parse.InvalidValue),
			func(int64) []seg {
				return agg{reportID: id("agg-count-overflow"),
					records: cat(record("18446744073709551615"), record("18446744073709551615"))}.doc()
			}),
		a("agg-entity-bomb", "a DOCTYPE with nested entities (billion laughs, size levels)", 10, 10,
			codes(parse.DTDRefused),
			func(n int64) []seg {
				var dtd strings.Builder
				dtd.WriteString("<!DOCTYPE feedback [<!ENTITY e0 \"lol\">")
				for i := int64(1); i < n; i++ {
					fmt.Fprintf(&dtd, "<!ENTITY e%d \"%s\">", i, strings.Repeat(fmt.Sprintf("&e%d;", i-1), 10))
				}
				dtd.WriteString("]>\n")
				return agg{reportID: id("agg-entity-bomb"), prolog: segs(dtd.String()),
					org: segs(fmt.Sprintf("&e%d;", n-1))}.doc()
			}),
		a("agg-huge-report-id", "report_id of size bytes", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.InvalidValue, parse.DecompressionLimit),
			func(n int64) []seg {
				d := agg{}.doc()
				// Replace the default id by a huge one.
				for i, s := range d {
					if strings.Contains(string(s.b), "<report_id>hostile</report_id>") {
						before, after, _ := strings.Cut(string(s.b), "<report_id>hostile</report_id>")
						return cat(d[:i], segs(before+"<report_id>hostile-", fill("A", n), "</report_id>"+after), d[i+1:])
					}
				}
				panic("hostile: report_id not found")
			}),
	}
}

// xmlEscape escapes the characters XML text cannot hold as they are.
func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")
	return r.Replace(s)
}

func tlsAttacks() []Attack {
	a := func(name, what string, test, bench int64, want Want, build func(int64) []seg) Attack {
		return Attack{Name: name, Kind: TLSRPT, What: what, Ext: ".json.gz", TestSize: test, BenchSize: bench,
			Want: want, write: gz(build)}
	}
	return []Attack{
		a("tls-huge-json", "size bytes of whitespace inside the policies array (4 MB of gzip expands to 4 GB)", 96*MiB, 4000*MiB,
			codes(parse.DecompressionLimit, parse.TooLarge, parse.JSONSyntax),
			func(n int64) []seg { return tls{reportID: "hostile-tls-huge-json", pad: fill(" ", n)}.doc() }),
		a("tls-many-failures", "size failure-detail rows in one policy (a million)", 200_000, 1_000_000,
			codes(parse.TooLarge, parse.JSONSyntax),
			func(n int64) []seg {
				return tls{reportID: "hostile-tls-many-failures",
					failures: cat(segs(tlsFailure), rep(","+tlsFailure, n-1))}.doc()
			}),
		a("tls-huge-strings", "organization-name of size bytes", 48*MiB, 500*MiB,
			codes(parse.TooLarge, parse.InvalidValue, parse.JSONSyntax, parse.DecompressionLimit),
			func(n int64) []seg { return tls{reportID: "hostile-tls-huge-strings", org: fill("A", n)}.doc() }),
		a("tls-escape-report-id", "a report-id and organization-name with terminal escapes and bidi controls (size unused)", 1, 1,
			codes(parse.InvalidValue),
			func(int64) []seg {
				return tls{reportID: `hostile-\u001b]0;pwned\u0007\u001b[2J`, org: segs(`evil\u202eorg\u001b[31m`)}.doc()
			}),
	}
}

func mimeAttacks() []Attack {
	m := func(name, what string, test, bench int64, want Want, write func(io.Writer, int64) error) Attack {
		return Attack{Name: name, Kind: MIME, What: what, Ext: ".eml", Mail: true, TestSize: test, BenchSize: bench,
			Want: want, write: write}
	}
	report := func(name string) []seg { return agg{reportID: "hostile-" + name}.doc() }
	return []Attack{
		m("mime-many-header-lines", "size header lines before a report attachment (2 million)", 2_000_000, 4_000_000,
			// not_a_report: a header block that does not end within the
			// sniffed head is not taken for a mail at all.
			codes(parse.TooLarge, parse.MIMESyntax, parse.NotAReport),
			func(w io.Writer, n int64) error {
				return writeRaw(w, segs(mailHeader("many header lines", "application/gzip",
					rep("X-Hostile: x\r\n", n), "Content-Transfer-Encoding: base64\r\n")))
			}),
		m("mime-huge-header-line", "one Subject line of size bytes", 48*MiB, 60*MiB,
			codes(parse.TooLarge, parse.MIMESyntax),
			func(w io.Writer, n int64) error {
				return writeRaw(w, segs(mailHeader("x", "text/plain", "X-Long: ", fill("A", n), "\r\n"), "body\r\n"))
			}),
		m("mime-many-parts", "a multipart/mixed of size tiny parts (a million)", 200_000, 4_000_000,
			codes(parse.TooLarge, parse.MIMESyntax, parse.NotAReport),
			func(w io.Writer, n int64) error {
				return writeRaw(w, segs(mailHeader("many parts", `multipart/mixed; boundary="b"`),
					rep("--b\r\n\r\nx\r\n", n), "--b--\r\n"))
			}),
		m("mime-deep-multipart", "size multiparts nested in each other, each with its own boundary", 10_000, 800_000,
			codes(parse.TooLarge, parse.MIMESyntax),
			func(w io.Writer, n int64) error {
				if err := writeRaw(w, segs(mailHeader("deep multipart", `multipart/mixed; boundary="b0"`))); err != nil {
					return err
				}
				for i := int64(1); i <= n; i++ {
					if _, err := fmt.Fprintf(w, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i-1, i); err != nil {
						return err
					}
				}
				for i := n; i >= 0; i-- {
					if _, err := fmt.Fprintf(w, "--b%d--\r\n", i); err != nil {
						return err
					}
				}
				return nil
			}),
		m("mime-nested-zips", "42.zip-style: size levels of zips holding 8 zips each, 16 MiB of report-like text at the leaves", 2, 3,
			codes(parse.DecompressionLimit, parse.TooLarge),
			func(w io.Writer, n int64) error {
				return writeMailWith(w, "nested zips", "application/zip", "r.zip", func(w io.Writer) error {
					return writeNestedZip(w, int(n), 8, 16*MiB)
				})
			}),
		m("mime-gzip-bomb", "a gzip attachment of size bytes of whitespace after <feedback>", 96*MiB, 4000*MiB,
			codes(parse.DecompressionLimit, parse.TooLarge, parse.XMLSyntax),
			func(w io.Writer, n int64) error {
				return writeMailWith(w, "gzip bomb", "application/gzip", "r.xml.gz", func(w io.Writer) error {
					return writeGzip(w, segs("<feedback>", fill(" ", n)))
				})
			}),
		m("mime-zip-bomb", "a zip attachment, one member of size bytes of whitespace after <feedback>", 96*MiB, 4000*MiB,
			codes(parse.DecompressionLimit, parse.TooLarge, parse.XMLSyntax),
			func(w io.Writer, n int64) error {
				return writeMailWith(w, "zip bomb", "application/zip", "r.zip", func(w io.Writer) error {
					return writeZip(w, []zipMember{{name: "r.xml", ss: segs("<feedback>", fill(" ", n))}})
				})
			}),
		m("mime-zip-many-members", "a zip of size members, each a valid report (the limit is 64)", 10_000, 80_000,
			codes(parse.TooLarge),
			func(w io.Writer, n int64) error {
				return writeMailWith(w, "many members", "application/zip", "r.zip", func(w io.Writer) error {
					zw := newStreamZip(w)
					for i := int64(0); i < n; i++ {
						if err := zw.add(zipMember{name: fmt.Sprintf("r%d.xml", i), ss: report(fmt.Sprintf("mime-zip-many-members-%d", i))}); err != nil {
							return err
						}
					}
					return zw.close()
				})
			}),
		m("mime-mislabelled", "a gzip bomb labelled text/plain (size bytes of whitespace)", 96*MiB, 4000*MiB,
			codes(parse.DecompressionLimit, parse.TooLarge, parse.XMLSyntax, parse.NotAReport),
			func(w io.Writer, n int64) error {
				return writeMailWith(w, "mislabelled", "text/plain", "notes.txt", func(w io.Writer) error {
					return writeGzip(w, segs("<feedback>", fill(" ", n)))
				})
			}),
	}
}

func failureAttacks() []Attack {
	f := func(name, what string, test, bench int64, want Want, build func(int64) []seg) Attack {
		return Attack{Name: name, Kind: Failure, What: what, Ext: ".eml", Mail: true, TestSize: test, BenchSize: bench,
			Want: want, write: raw(build)}
	}
	hugeFields := f("arf-huge-fields", "a failure report whose Authentication-Results is size bytes", 48*MiB, 60*MiB,
		codes(parse.TooLarge, parse.InvalidValue, parse.MIMESyntax),
		func(n int64) []seg { return arf("arf-huge-fields", nil, fill("A", n)) })
	hugeFields.HeldWhole = true
	return []Attack{
		hugeFields,
		f("arf-huge-domain", "a failure report whose Reported-Domain is size bytes", 1*MiB, 60*MiB,
			codes(parse.TooLarge, parse.InvalidValue, parse.MIMESyntax),
			func(n int64) []seg { return arf("arf-huge-domain", fill("a.", n-n%2), nil) }),
		f("arf-hostile-domain", "a failure report whose Reported-Domain holds a quote, NUL and SQL (size unused)", 1, 1,
			codes(parse.InvalidValue),
			func(int64) []seg {
				return arf("arf-hostile-domain", segs(strings.ReplaceAll(hostileDomain, "\n", " ")), nil)
			}),
	}
}

func transportAttacks() []Attack {
	return []Attack{
		{Name: "stdin-endless", Kind: Transport, Ext: ".xml", Stdin: true,
			What:     "an endless pipe on standard input (`dmarcd ingest -`): <feedback> then spaces; size 0 never ends",
			TestSize: 0, BenchSize: 0, Want: codes(parse.TooLarge),
			write: func(w io.Writer, n int64) error {
				if _, err := io.WriteString(w, "<feedback>"); err != nil {
					return err
				}
				chunk := []byte(strings.Repeat(" ", 64<<10))
				for sent := int64(0); n == 0 || sent < n; sent += int64(len(chunk)) {
					if _, err := w.Write(chunk); err != nil {
						return err
					}
				}
				return nil
			}},
		{Name: "over-max-message", Kind: Transport, Ext: ".eml", Mail: true,
			What:     "a mail of size bytes, one more than limits.max_message_bytes (64 MiB)",
			TestSize: 64*MiB + 1, BenchSize: 64*MiB + 1, Want: codes(parse.TooLarge),
			write: func(w io.Writer, n int64) error {
				head := segs(mailHeader("over max", "text/plain"))
				var hl int64
				for _, s := range head {
					hl += int64(len(s.b)) * s.n
				}
				return writeRaw(w, cat(head, fill("A", max(n-hl, 0))))
			}},
	}
}
