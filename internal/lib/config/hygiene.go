package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// AllDomains is the one entry of owned_domains that accepts reports for
// every policy domain: `owned_domains: ["*"]`, written on purpose.
const AllDomains = "*"

// ErrNoOwnedDomains is the problem of a daemon configuration without
// owned_domains (RequireOwnedDomains).
var ErrNoOwnedDomains = errors.New(`is empty: dmarcd serve stores only reports for the domains listed here, ` +
	`because anyone can send reports to a published rua address (forged domains would fill the store and ` +
	`push yours out of the metrics); list your domains (e.g. [example.com]), or write ["*"] to accept every domain`)

// AcceptsAllDomains reports whether owned_domains is empty or ["*"]: reports
// for any policy domain are stored.
func (c Config) AcceptsAllDomains() bool {
	return len(c.OwnedDomains) == 0 || (len(c.OwnedDomains) == 1 && c.OwnedDomains[0] == AllDomains)
}

// Owned returns the owned domains, normalised, for the ingest pipeline and
// the metrics: nil when every domain is accepted (empty or ["*"]).
func (c Config) Owned() []string {
	if c.AcceptsAllDomains() {
		return nil
	}
	out := make([]string, 0, len(c.OwnedDomains))
	for _, d := range c.OwnedDomains {
		out = append(out, align.Normalize(d))
	}
	return out
}

// RequireOwnedDomains returns a problem naming owned_domains when it is
// empty: the daemon (which reads a published rua mailbox unattended) needs
// it, or an explicit ["*"]. One-shot commands accept an empty list.
func (c Config) RequireOwnedDomains() error {
	if len(c.OwnedDomains) == 0 {
		return Problems{{Key: "owned_domains", Msg: ErrNoOwnedDomains.Error()}}
	}
	return nil
}

// validateOwned checks that owned_domains holds DNS names, or only "*".
func (c Config) validateOwned(ps *Problems) {
	for i, d := range c.OwnedDomains {
		if d == AllDomains {
			if len(c.OwnedDomains) > 1 {
				ps.add("owned_domains", `"*" (every domain) must be the only entry, not one of %d`, len(c.OwnedDomains))
			}
			continue
		}
		if err := valid.Domain(align.Normalize(d)); err != nil {
			ps.add(fmt.Sprintf("owned_domains[%d]", i), "%v", err)
		}
	}
}

// validateDSN parses the DSN the way the store will (clickhouse.ParseDSN),
// so that a DSN that cannot be used is a problem at start and in
// --check-config, not a failure at the first insert.
func (c Config) validateDSN(ps *Problems) {
	if _, err := clickhouse.ParseDSN(c.ClickHouse.DSN); err != nil {
		ps.add("clickhouse.dsn", "%s cannot be parsed: %v", valid.Quote(redactDSN(c.ClickHouse.DSN), 120), redactErr(err, c.ClickHouse.DSN))
	}
}

// redactErr is err's text without the DSN's password, should the parser
// have repeated it.
func redactErr(err error, dsn string) string {
	s := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "***")
		}
	}
	return s
}

// Warnings lists what the configuration allows but an operator should know
// about, one sentence each naming the key: TLS verification switched off
// (clickhouse.dsn skip_verify=true, a source's insecure_skip_verify), and a
// plaintext DSN (no secure=true) to a ClickHouse that is not on loopback
// (its password and every report would cross the network in clear). The
// daemon logs them at start; `dmarcd serve --check-config` prints them.
func (c Config) Warnings() []string {
	var w []string
	dsn := c.ClickHouse.DSN
	if u, err := url.Parse(dsn); err == nil {
		q := u.Query()
		if isTrue(q.Get("skip_verify")) {
			w = append(w, "clickhouse.dsn: skip_verify=true: the ClickHouse server certificate is not verified (anyone on the path can read and change what is stored)")
		}
		if !isTrue(q.Get("secure")) {
			if remote := remoteHosts(u.Host); len(remote) > 0 {
				w = append(w, fmt.Sprintf("clickhouse.dsn: plaintext connection (no secure=true) to %s, not a loopback address: the password and every report cross the network unencrypted", strings.Join(remote, ", ")))
			}
		}
	}
	for _, s := range c.Sources {
		if s.InsecureSkipVerify {
			w = append(w, s.key("insecure_skip_verify")+": true: the server certificate is not verified")
		}
	}
	return w
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// remoteHosts returns the hosts of a DSN's host list ("a:9000,b:9000") that
// are not loopback: localhost, 127.0.0.0/8 or ::1.
func remoteHosts(hostList string) []string {
	var out []string
	for _, hp := range strings.Split(hostList, ",") {
		host := hp
		if h, _, err := net.SplitHostPort(hp); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if host == "" || strings.EqualFold(host, "localhost") {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, valid.Printable(host))
	}
	return out
}

// ErrNoStateDir is returned by DefaultKeyFile when neither XDG_STATE_HOME
// nor HOME says where the privacy key may live.
var ErrNoStateDir = errors.New("privacy.key_file is not set and neither XDG_STATE_HOME nor HOME is: " +
	"set privacy.key_file (e.g. /var/lib/dmarcd/redaction.key), XDG_STATE_HOME, or DMARCD_PRIVACY_KEY; " +
	"the key is never kept in a shared temporary folder")

// DefaultKeyFile is where the redaction key lives when privacy.key_file is
// not set: $XDG_STATE_HOME/dmarcd/redaction.key, else
// $HOME/.local/state/dmarcd/redaction.key. With neither set it returns
// ErrNoStateDir: never a folder others can write to (such as /tmp), where
// a key planted in advance would be used.
func DefaultKeyFile() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return "", ErrNoStateDir
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "dmarcd", "redaction.key"), nil
}

// checkKeyPath refuses a key file (or, when the file does not exist yet,
// only its folder) that others could have written: the folder or the file
// writable by group or others (a sticky folder such as /tmp included), or
// owned by another user than this process's (root excepted).
func checkKeyPath(path string) error {
	dir := filepath.Dir(path)
	if err := checkOwnedNotShared(dir, "folder"); err != nil {
		return err
	}
	if err := checkOwnedNotShared(path, "file"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func checkOwnedNotShared(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if what == "file" && !fi.Mode().IsRegular() {
		return fmt.Errorf("privacy.key_file %s is not a regular file (%v): refusing to use it", valid.Quote(path, 200), fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("privacy.key_file: the %s %s is writable by other users (mode %v): refusing a key someone else could have planted or replaced; chmod go-w it or choose another path",
			what, valid.Quote(path, 200), fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
			return fmt.Errorf("privacy.key_file: the %s %s belongs to user %d, not to this process's user %d (or root): refusing it",
				what, valid.Quote(path, 200), uid, os.Geteuid())
		}
	}
	return nil
}
