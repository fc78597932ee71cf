package gen

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustGenerate(t *testing.T, opt Options) []File {
	t.Helper()
	files, err := Generate(opt)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", opt, err)
	}
	return files
}

func TestGenerateIsDeterministic(t *testing.T) {
	opt := Options{Seed: 7, Days: 10}
	a, b := mustGenerate(t, opt), mustGenerate(t, opt)
	if len(a) != len(b) {
		t.Fatalf("two runs gave %d and %d files", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("file %d differs between runs: %s vs %s", i, a[i].Name, b[i].Name)
		}
	}
	c := mustGenerate(t, Options{Seed: 8, Days: 10})
	same := len(a) == len(c)
	for i := 0; same && i < len(a); i++ {
		same = bytes.Equal(a[i].Data, c[i].Data)
	}
	if same {
		t.Fatal("seeds 7 and 8 produced identical sets")
	}
}

func TestDefaultSetHasAFewDozenFilesAndAFewThousandMessages(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 1})
	sum := Summarize(files)
	t.Logf("%d files, %d reports, %d records, %d messages", len(files), sum.Reports, sum.Records, sum.Messages)
	if len(files) < 30 || len(files) > 90 {
		t.Errorf("%d files, want a few dozen", len(files))
	}
	if sum.Messages < 1500 || sum.Messages > 9000 {
		t.Errorf("%d messages, want a few thousand", sum.Messages)
	}
	var eml, gz, zip, dups int
	reporters := map[string]bool{}
	for _, f := range files {
		switch {
		case strings.HasSuffix(f.Name, ".eml"):
			eml++
		case strings.HasSuffix(f.Name, ".xml.gz"):
			gz++
		case strings.HasSuffix(f.Name, ".zip"):
			zip++
		default:
			t.Errorf("file %s: unexpected extension", f.Name)
		}
		for _, r := range f.Reports {
			reporters[r.Reporter] = true
			if r.Duplicate {
				dups++
			}
		}
	}
	if eml < len(files)*3/4 || gz+zip == 0 || zip == 0 {
		t.Errorf("%d mails, %d bare .xml.gz, %d bare .zip: want mostly mails and a few bare files of both kinds", eml, gz, zip)
	}
	if dups == 0 {
		t.Error("no duplicate delivery")
	}
	for _, org := range []string{"google.com", "Outlook.com", "Enterprise Outlook", "Yahoo", "Mail.Ru", "AMAZON-SES"} {
		if !reporters[org] {
			t.Errorf("no report from %s", org)
		}
	}
	news := sum.PerDomain["news.example.com"]
	if news.Messages == 0 {
		t.Error("no mail from news.example.com")
	}
	if news.DKIMAlignedStrict != 0 || news.SPFAlignedStrict != 0 || news.DMARCPassRelaxed != news.Messages {
		t.Errorf("news.example.com: %+v: want every message passing relaxed and none aligned strictly", news)
	}
	main := sum.PerDomain["example.com"]
	if !(main.DMARCPassRelaxed < main.Messages && main.DKIMAlignedStrict <= main.DMARCPassRelaxed && main.DKIMAlignedStrict > 0 &&
		main.SPFAlignedStrict < main.DKIMAlignedStrict && main.SPFAlignedStrict > 0 && main.SPFAlignedRelaxed > main.SPFAlignedStrict) {
		t.Errorf("example.com: %+v: want failures, SES's relaxed-only SPF and Workspace's strict SPF", main)
	}
}

func TestFilesAreInDeliveryOrderAndDuplicatesFollowTheirOriginal(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 3, Days: 21})
	seen := map[string]bool{}
	for _, f := range files {
		for _, r := range f.Reports {
			k := r.Reporter + "\x00" + r.ReportID
			if r.Duplicate != seen[k] {
				t.Errorf("%s: Duplicate=%v but seen before=%v", f.Name, r.Duplicate, seen[k])
			}
			seen[k] = true
		}
	}
	for i := 1; i < len(files); i++ {
		if files[i-1].Name[:4] >= files[i].Name[:4] {
			t.Errorf("file %s before %s: sequence prefix not increasing", files[i-1].Name, files[i].Name)
		}
	}
}

func TestSummarizeCountsDuplicatesOnce(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 1, Days: 14})
	var unique []File
	var all Truth
	all.PerDomain = map[string]DomainTruth{}
	dups := 0
	for _, f := range files {
		for _, r := range f.Reports {
			all.Messages += r.Messages
			if r.Duplicate {
				dups++
			}
		}
		if !f.Reports[0].Duplicate {
			unique = append(unique, f)
		}
	}
	if dups == 0 {
		t.Fatal("the set has no duplicate to count once")
	}
	got, want := Summarize(files), Summarize(unique)
	if got.Reports != want.Reports || got.Records != want.Records || got.Messages != want.Messages {
		t.Errorf("Summarize with duplicates = %d reports %d records %d messages, without = %d %d %d",
			got.Reports, got.Records, got.Messages, want.Reports, want.Records, want.Messages)
	}
	for d, w := range want.PerDomain {
		if got.PerDomain[d] != w {
			t.Errorf("%s: with duplicates %+v, without %+v", d, got.PerDomain[d], w)
		}
	}
	if got.Reports != len(unique) || all.Messages <= got.Messages {
		t.Errorf("%d unique reports in %d files; messages over all files %d, unique %d", got.Reports, len(unique), all.Messages, got.Messages)
	}
}

func TestScaleMultipliesMessagesAndRecords(t *testing.T) {
	one := Summarize(mustGenerate(t, Options{Seed: 2, Days: 7}))
	four := Summarize(mustGenerate(t, Options{Seed: 2, Days: 7, Scale: 4}))
	if one.Reports != four.Reports {
		t.Errorf("scale changed the number of reports: %d vs %d", one.Reports, four.Reports)
	}
	mr := float64(four.Messages) / float64(one.Messages)
	rr := float64(four.Records) / float64(one.Records)
	t.Logf("scale 4: messages ×%.2f, records ×%.2f", mr, rr)
	if mr < 3 || mr > 5.5 || rr < 2.5 || rr > 5.5 {
		t.Errorf("scale 4: messages ×%.2f (%d→%d), records ×%.2f (%d→%d): want about ×4",
			mr, one.Messages, four.Messages, rr, one.Records, four.Records)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, opt := range []Options{
		{Domain: "com"},
		{Domain: "co.uk"},
		{Domain: "exa mple.com"},
		{Domain: "-x.example.com"},
		{Days: -1},
		{Scale: -2},
		{Scale: maxScale + 1},
	} {
		if _, err := Generate(opt); !errors.Is(err, ErrOptions) {
			t.Errorf("Generate(%+v) = %v, want ErrOptions", opt, err)
		}
	}
	files := mustGenerate(t, Options{Domain: "Shop.Example.CO.UK.", Days: 2, Start: time.Date(2024, 2, 28, 13, 5, 0, 0, time.UTC)})
	r := files[0].Reports[0]
	if r.PolicyDomain != "shop.example.co.uk" || r.Begin != time.Date(2024, 2, 28, 0, 0, 0, 0, time.UTC) {
		t.Errorf("first report: domain %q begin %v: want normalised domain and the start day at 00:00Z", r.PolicyDomain, r.Begin)
	}
}

func TestWriteDirWritesFilesAndManifest(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 1, Days: 5})
	dir := filepath.Join(t.TempDir(), "set")
	if err := WriteDir(dir, files); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if sc.Text() != "name\treports\trecords\tmessages\tduplicate" {
		t.Errorf("manifest header %q", sc.Text())
	}
	i := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if i >= len(files) || len(cols) != 5 {
			t.Fatalf("manifest line %d: %q", i+2, sc.Text())
		}
		fl := files[i]
		r := fl.Reports[0]
		want := []string{fl.Name, "1", strconv.Itoa(r.Records), strconv.FormatUint(r.Messages, 10), strconv.FormatBool(r.Duplicate)}
		if strings.Join(cols, "\t") != strings.Join(want, "\t") {
			t.Errorf("manifest line %d = %q, want %q", i+2, cols, want)
		}
		data, err := os.ReadFile(filepath.Join(dir, fl.Name))
		if err != nil || !bytes.Equal(data, fl.Data) {
			t.Errorf("%s: not written as generated (%v)", fl.Name, err)
		}
		i++
	}
	if i != len(files) {
		t.Errorf("manifest has %d lines for %d files", i, len(files))
	}
	if err := WriteDir(dir, []File{{Name: "../escape.eml"}}); err == nil {
		t.Error("WriteDir accepted a name with a path")
	}
}
