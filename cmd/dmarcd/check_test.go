package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

func runCheckOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runCheck(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestCheckExitsOneOnlyOnErrors(t *testing.T) {
	srv := dnstest.Start(t,
		`_dmarc.good.example. TXT "v=DMARC1; p=reject; rua=mailto:d@good.example"`,
		`good.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.bad.example. TXT "v=DMARC1; p=reject; rua=mailto:d@reports.example.net"`,
		`bad.example. TXT "v=spf1 +all"`,
	)
	code, out, errs := runCheckOut(t, "--resolver", srv.Addr, "--no-store", "good.example")
	if code != exitOK || !strings.Contains(out, "0 errors") {
		t.Fatalf("good.example: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCheckOut(t, "--resolver", srv.Addr, "--no-store", "--json", "good.example", "bad.example")
	if code != exitFail {
		t.Errorf("exit %d, want 1 with an error finding\n%s", code, out)
	}
	var reps []dnscheck.Report
	if err := json.Unmarshal([]byte(out), &reps); err != nil || len(reps) != 2 {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if reps[0].Errors() != 0 || reps[1].Errors() != 2 {
		t.Errorf("errors: good %d, bad %d (want 0 and 2: +all, unauthorised rua)\n%s", reps[0].Errors(), reps[1].Errors(), out)
	}
}

func TestCheckUsage(t *testing.T) {
	if code, _, _ := runCheckOut(t); code != exitUsage {
		t.Errorf("no domain: exit %d, want %d", code, exitUsage)
	}
}
