// Package gen writes synthetic DMARC test data.
package gen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
)

// WriteLargeReport writes a Google-style RFC 7489 aggregate report with the
// given number of records, the same bytes for the same seed: about 700 bytes
// a record, with one to three DKIM results, an SPF result, IPv4 and IPv6
// sources, header_from in a few domains, and counts skewed towards small
// numbers as real reports are. It is the input of the parser benchmarks.
func WriteLargeReport(w io.Writer, records int, seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 64<<10)
	begin := 1718236800 + int64(rng.IntN(365))*86400
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>%d</report_id>
    <date_range>
      <begin>%d</begin>
      <end>%d</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>none</sp>
    <pct>100</pct>
    <np>none</np>
  </policy_published>
`, rng.Uint64(), begin, begin+86399)

	fromDomains := []string{"example.com", "example.com", "example.com", "mail.example.com", "news.example.com", "shop.example.com"}
	signers := []string{"example.com", "amazonses.com", "sendgrid.net", "mailchimpapp.net", "salesforce.com", "google.com"}
	spfDomains := []string{"example.com", "bounce.example.com", "amazonses.com", "sendgrid.net", "mcsv.net", "gmail.com"}
	var ipbuf []byte
	for i := 0; i < records; i++ {
		ipbuf = randomIP(rng, ipbuf[:0])
		count := 1
		switch r := rng.IntN(100); {
		case r < 60:
			count = 1 + rng.IntN(3)
		case r < 90:
			count = 1 + rng.IntN(50)
		default:
			count = 1 + rng.IntN(5000)
		}
		from := fromDomains[rng.IntN(len(fromDomains))]
		ndkim := 1 + rng.IntN(3)
		dkimPass := rng.IntN(10) < 8
		spfPass := rng.IntN(10) < 7
		disposition := "none"
		if !dkimPass && !spfPass {
			disposition = "quarantine"
		}
		fmt.Fprintf(bw, `  <record>
    <row>
      <source_ip>%s</source_ip>
      <count>%d</count>
      <policy_evaluated>
        <disposition>%s</disposition>
        <dkim>%s</dkim>
        <spf>%s</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>%s</header_from>
    </identifiers>
    <auth_results>
`, ipbuf, count, disposition, passFail(dkimPass), passFail(spfPass), from)
		for d := 0; d < ndkim; d++ {
			domain := from
			if d > 0 {
				domain = signers[rng.IntN(len(signers))]
			}
			result := "pass"
			if d == 0 && !dkimPass {
				result = []string{"fail", "neutral", "temperror", "permerror"}[rng.IntN(4)]
			}
			fmt.Fprintf(bw, `      <dkim>
        <domain>%s</domain>
        <result>%s</result>
        <selector>%s</selector>
      </dkim>
`, domain, result, selector(rng, domain))
		}
		spfResult := "pass"
		if !spfPass {
			spfResult = []string{"fail", "softfail", "neutral", "none"}[rng.IntN(4)]
		}
		fmt.Fprintf(bw, `      <spf>
        <domain>%s</domain>
        <result>%s</result>
      </spf>
    </auth_results>
  </record>
`, spfDomains[rng.IntN(len(spfDomains))], spfResult)
	}
	bw.WriteString("</feedback>\n")
	return bw.Flush()
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// selector returns one of a few selectors per signing domain, some of them
// long random-looking ones as Amazon SES uses.
func selector(rng *rand.Rand, domain string) string {
	n := rng.IntN(3)
	switch domain {
	case "amazonses.com":
		return []string{"ug7nbtf4gccmlpwj322ax3p6ow6yfsug", "6gbrjpgwjskckoa6a5zn6fwqkn67xbtw", "224i4yxa5dv7c2xz3womw6peuasteono"}[n]
	case "google.com":
		return []string{"20230601", "20221208", "20210112"}[n]
	}
	return []string{"s1", "s2", "selector1"}[n]
}

// randomIP appends a source address: mostly IPv4 from a few provider
// ranges, a fifth IPv6.
func randomIP(rng *rand.Rand, dst []byte) []byte {
	if rng.IntN(5) == 0 {
		var a [16]byte
		copy(a[:], []byte{0x2a, 0x01, 0x01, 0x11, 0xf4, 0x00})
		a[6] = byte(rng.IntN(256))
		a[15] = byte(rng.IntN(256))
		a[14] = byte(rng.IntN(4))
		return netip.AddrFrom16(a).AppendTo(dst)
	}
	prefixes := [][2]byte{{209, 85}, {54, 240}, {167, 89}, {198, 2}, {40, 107}, {185, 12}}
	p := prefixes[rng.IntN(len(prefixes))]
	return netip.AddrFrom4([4]byte{p[0], p[1], byte(rng.IntN(256)), byte(rng.IntN(256))}).AppendTo(dst)
}
