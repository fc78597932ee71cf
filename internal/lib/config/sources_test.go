package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSourcesDecodeWithDefaultsAndEnvironmentByName(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	t.Setenv("DMARCD_SOURCES_REPORTS_PASSWORD", "from-env")
	t.Setenv("DMARCD_SOURCES_DROP_BOX_SETTLE", "5s")
	t.Setenv("DMARCD_HTTP_LISTEN", "127.0.0.1:9999")
	c, err := Load(write(t, `
http: {listen: 127.0.0.1:1}
sources:
  - name: reports
    type: imap
    address: imap.example.com:993
    username: dmarc@example.com
    password_file: /nonexistent
  - name: other
    type: imap
    address: 127.0.0.1:143
    tls: none
    username: u
    password_file: `+pwFile+`
  - name: drop-box
    type: spool
    path: /var/spool/dmarcd
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:9999" {
		t.Errorf("http.listen %q: DMARCD_HTTP_LISTEN must win", c.HTTP.Listen)
	}
	r, o, s := c.Sources[0], c.Sources[1], c.Sources[2]
	if r.Password != "from-env" || o.Password != "from-file" {
		t.Errorf("passwords %q, %q: want the environment's (over password_file) and the file's", r.Password, o.Password)
	}
	if r.TLS != "implicit" || r.Mailbox != "INBOX" || r.ProcessedMailbox != "dmarcd/processed" || time.Duration(r.PollInterval) != time.Minute {
		t.Errorf("imap defaults not applied: %+v", r)
	}
	if time.Duration(s.Settle) != 5*time.Second || time.Duration(s.PollInterval) != DefaultSpoolPollInterval {
		t.Errorf("spool: settle %v (want 5s from DMARCD_SOURCES_DROP_BOX_SETTLE), poll %v", time.Duration(s.Settle), time.Duration(s.PollInterval))
	}
	if r.Label() != "imap:reports" {
		t.Errorf("label %q", r.Label())
	}
}

func TestLoadReportsEveryProblemWithItsKey(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	_, err := Load(write(t, `
http: {listen: nowhere}
limits: {max_zip_members: 0}
sources:
  - name: reports
    type: imap
    address: imap.example.com:993
    username: u
    passwrd: x
  - name: drop
    type: spool
    mailbox: INBOX
  - name: bucket
    type: s3
    bucket: b
    mode: delete
    settle: lots
`))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v is not Problems", err)
	}
	for _, want := range []string{
		"config http.listen:",
		"config limits.max_zip_members: must be positive",
		"config sources[reports].passwrd: unknown key",
		"config sources[reports].password: missing",
		"config sources[drop].mailbox: not a key of a spool source",
		"config sources[drop].path: missing",
		"config sources[bucket].mode: \"delete\" is not move or leave",
		"config sources[bucket].settle: \"lots\" is not a duration",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}

func TestSourceNamesAreUniqueAndTypesKnown(t *testing.T) {
	_, err := Load(write(t, "sources:\n  - {name: a, type: spool, path: /x}\n  - {name: a, type: spool, path: /y}\n  - {name: b, type: pop3}\n  - {type: spool, path: /z}\n  - {name: c, type: spool, path: /x}\n"))
	for _, want := range []string{`sources[a].name: two sources are named "a"`, `sources[b].type: "pop3" is not imap, spool or s3`,
		"sources[3].name: missing", "sources[c].path: /x is also the path of source \"a\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestSourceEqualIgnoresWhereKeysCameFrom(t *testing.T) {
	a := Source{Name: "x", Type: "spool", Path: "/p"}
	b := a
	b.recordKey("path")
	if !a.Equal(b) {
		t.Error("same settings must be equal")
	}
	b.Path = "/q"
	if a.Equal(b) {
		t.Error("different paths must differ")
	}
}

// TestExampleFileIsValidAndHoldsTheDefaults: docs/dmarcd.example.yaml
// loads, and what it sets is the defaults.
func TestExampleFileIsValidAndHoldsTheDefaults(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	c, err := Load(filepath.Join("..", "..", "..", "docs", "dmarcd.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OwnedDomains) == 0 && len(c.Sources) == 0 {
		c.OwnedDomains, c.Sources = nil, nil // [] in the file
	}
	if d := Default(); !reflect.DeepEqual(c, d) {
		t.Errorf("example file:\n%+v\ndefaults:\n%+v", c, d)
	}
}
