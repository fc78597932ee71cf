package config

import (
	"errors"
	"strings"
	"testing"
)

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
`), testDefaults)
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
	_, err := Load(write(t, "sources:\n  - {name: a, type: spool, path: /x}\n  - {name: a, type: spool, path: /y}\n  - {name: b, type: pop3}\n  - {type: spool, path: /z}\n  - {name: c, type: spool, path: /x}\n"), testDefaults)
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
