// Package config reads dmarcd's YAML configuration file over the defaults it
// is given, applies the environment, and validates it with errors that name
// the key. It declares no default value itself: each belongs to the
// component that uses it, and internal/app/wire gathers them (wire.Defaults).
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Every key is documented in
// docs/configuration.md.
type Config struct {
	ClickHouse ClickHouse `yaml:"clickhouse"`
	// OwnedDomains are the policy domains whose reports are stored (and
	// that get a metric label of their own); ["*"] accepts every domain.
	// `dmarcd serve` requires it (RequireOwnedDomains); see Owned.
	OwnedDomains []string   `yaml:"owned_domains"`
	Limits       Limits     `yaml:"limits"`
	Retention    Duration   `yaml:"retention"` // 0 = keep forever
	Privacy      Privacy    `yaml:"privacy"`
	ReportAuth   ReportAuth `yaml:"report_auth"`
	Gauges       Gauges     `yaml:"gauges"`
	// The daemon's periodic jobs, off the ingest path (internal/app/daemon/periodic.go).
	Check       Check       `yaml:"check"`
	Attribution Attribution `yaml:"attribution"`
	DNS         DNS         `yaml:"dns"`
	Log         Log         `yaml:"log"`
	// The daemon (dmarcd serve).
	HTTP    HTTP     `yaml:"http"`
	Sources []Source `yaml:"sources"`
	// ShutdownGrace is how long SIGTERM waits for the inputs in hand to
	// commit before the daemon exits anyway (they are retried at the next
	// start).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Gauges configures the report-time gauges the daemon computes from
// ClickHouse (dmarc_messages, dmarc_pass_ratio, ...).
type Gauges struct {
	Interval Duration `yaml:"interval"` // how often; default gauges.DefaultInterval
	LagDays  int      `yaml:"lag_days"` // windows end at the UTC midnight this many days back; default gauges.DefaultLag
}

// Check configures the daemon's periodic `dmarcd check`: the DNS records
// it reads are stored when they change (table dns_records), for dashboard
// annotations.
type Check struct {
	Interval Duration `yaml:"interval"` // 0: off
	// Domains to check; empty: the policy domains of the reports stored
	// in the last 30 days.
	Domains []string `yaml:"domains"`
}

// Attribution configures the daemon's periodic attribution of new source
// IPs (internal/product/attrib: reverse DNS, the SPF term that authorises them).
type Attribution struct {
	Interval     Duration `yaml:"interval"`        // 0: off
	MaxIPsPerRun int      `yaml:"max_ips_per_run"` // most IPs attributed per run, those with the most messages first; default wire.DefaultAttributionMaxIPs
	// Operator data (internal/product/attrib.Options): MaxMind-format databases
	// for country and AS (GeoLite2-Country/City, GeoLite2-ASN, or one file
	// with both), none shipped or downloaded; and a known-sources file
	// (docs/known-sources.example.yaml). "": none.
	GeoIPCountryDB string `yaml:"geoip_country_db"`
	GeoIPASNDB     string `yaml:"geoip_asn_db"`
	KnownSources   string `yaml:"known_sources"`
}

// DNS is the resolver of the daemon's periodic check and attribution.
type DNS struct {
	Resolver string   `yaml:"resolver"` // host:port (or host, port 53); "": the first nameserver of /etc/resolv.conf
	Timeout  Duration `yaml:"timeout"`  // per query; default dnscheck.DefaultTimeout
}

// ReportAuth configures the authentication of report mails on arrival
// (DKIM, and the DMARC policy of the From domain; docs/readiness.md,
// "Trusting the reports").
type ReportAuth struct {
	Enabled    bool     `yaml:"enabled"`     // default on (wire.Defaults); false stores every report "unverified"
	DNSTimeout Duration `yaml:"dns_timeout"` // per lookup; default enrich.DefaultAuthTimeout
	Resolver   string   `yaml:"resolver"`    // host:port (or host, port 53); "": the first nameserver of /etc/resolv.conf
}

// Privacy is what of a failure report reaches the store.
type Privacy struct {
	KeyFile        string `yaml:"key_file"`        // secret for address tokens; created (32 random bytes) when missing
	RedactSubjects bool   `yaml:"redact_subjects"` // replace subjects with [redacted]
	KeepBodies     bool   `yaml:"keep_bodies"`     // store original message bodies (personal data: see README)
}

// ClickHouse is where reports are stored.
type ClickHouse struct {
	DSN     string `yaml:"dsn"`      // clickhouse-go DSN; env DMARCD_CLICKHOUSE_DSN wins
	DSNFile string `yaml:"dsn_file"` // read the DSN (with its password) from this file instead
	// Cluster switches to cluster mode: the name of a cluster in the
	// servers' remote_servers (docs/cluster.md); env DMARCD_CLICKHOUSE_CLUSTER.
	Cluster string `yaml:"cluster"`
	// BatchRows is how many records go into one INSERT block: larger is
	// faster for big reports and costs memory (about 1 KB a record).
	BatchRows int `yaml:"batch_rows"`
	// PartsPerSecond is the budget of new parts a second in any one
	// partition of a table that a writer's group commits make
	// (store.GroupOptions.PartsPerSecond).
	PartsPerSecond int `yaml:"parts_per_second"`
}

// Limits bound what one input may cost.
type Limits struct {
	MaxMessageBytes Size `yaml:"max_message_bytes"`
	MaxMemberBytes  Size `yaml:"max_member_bytes"`
	MaxTotalBytes   Size `yaml:"max_total_bytes"`
	MaxZipMembers   int  `yaml:"max_zip_members"`
	MaxDepth        int  `yaml:"max_nesting_depth"`
	MaxXMLDepth     int  `yaml:"max_xml_depth"`
	MaxRecords      int  `yaml:"max_records_per_report"`

	// Bounds on what one value or one structure of an input may cost while
	// it is read (0 or absent: the parser's own default, documented in
	// docs/configuration.md and docs/security.md).
	MaxXMLTokenBytes     Size  `yaml:"max_xml_token_bytes"`     // aggregate XML: one tag, text run, comment, PI or CDATA
	MaxXMLValueBytes     Size  `yaml:"max_xml_value_bytes"`     // aggregate XML: one element's decoded value
	MaxXMLHeaderBytes    Size  `yaml:"max_xml_header_bytes"`    // aggregate XML: from <feedback> to the end of the header
	MaxResultsPerRecord  int   `yaml:"max_results_per_record"`  // DKIM/SPF results and override reasons in one record
	MaxDecompressionRate int64 `yaml:"max_decompression_ratio"` // decompressed bytes per input byte, past 16 MiB
	MaxContainers        int   `yaml:"max_containers"`          // gzip members, archives, members, embedded mails in one input
	MaxMIMEParts         int   `yaml:"max_mime_parts"`          // MIME parts in one input
	MaxHeaderFields      int   `yaml:"max_header_fields"`       // fields in one header block
	MaxHeaderBytes       Size  `yaml:"max_header_bytes"`        // size of one header block
	MaxTLSRPTBytes       Size  `yaml:"max_tlsrpt_bytes"`        // one TLS report's JSON
	MaxTLSRPTFailureRows int   `yaml:"max_tlsrpt_failure_rows"` // failure-details rows of one TLS report
	HashAheadBytes       Size  `yaml:"hash_ahead_bytes"`        // largest input hashed before parsing (provenance in its rows)

	// What `dmarcd ingest` of files has in hand at once: inputs read or
	// waiting for their group's commit (0: its default).
	IngestInputsInHand int  `yaml:"ingest_inputs_in_hand"` // how many
	IngestBytesInHand  Size `yaml:"ingest_bytes_in_hand"`  // their sizes summed
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Defaults are the values of the keys that neither the file nor the
// environment sets: Config for the keys outside sources, and per source
// type the keys of a source of that type (its name and type aside).
// internal/app/wire.Defaults builds them from the components that own them.
type Defaults struct {
	Config
	IMAP, Spool, S3 Source
}

// Load reads path (if not empty) over the defaults d, then the environment
// (every key: see EnvName; DMARCD_CLICKHOUSE_DSN wins over
// clickhouse.dsn_file), reads the secrets named by *_file keys, and
// validates the result. The error, if any, is Problems: every problem found,
// each naming its key.
func Load(path string, d Defaults) (Config, error) {
	c := d.Config
	var ps Problems
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
		decode(&root, reflect.ValueOf(&c).Elem(), "", &ps)
	}
	applyEnv(reflect.ValueOf(&c).Elem(), "", nil, &ps)
	if c.ClickHouse.DSNFile != "" && os.Getenv("DMARCD_CLICKHOUSE_DSN") == "" {
		b, err := os.ReadFile(c.ClickHouse.DSNFile)
		if err != nil {
			ps.add("clickhouse.dsn_file", "%v", err)
		} else {
			c.ClickHouse.DSN = strings.TrimSpace(string(b))
		}
	}
	for i := range c.Sources {
		c.Sources[i].defaults(d)
		c.Sources[i].readSecrets(&ps)
	}
	c.HTTP.readSecret(&ps)
	if err := c.Validate(); err != nil {
		ps = append(ps, err.(Problems)...)
	}
	return c, ps.err()
}

// Validate checks every key; its error is Problems, naming every bad key.
func (c Config) Validate() error {
	var ps Problems
	if !strings.HasPrefix(c.ClickHouse.DSN, "clickhouse://") && !strings.HasPrefix(c.ClickHouse.DSN, "tcp://") {
		ps.add("clickhouse.dsn", "%q is not a clickhouse:// DSN", redactDSN(c.ClickHouse.DSN))
	} else {
		c.validateDSN(&ps)
	}
	c.validateOwned(&ps)
	if c.ClickHouse.BatchRows < 100 || c.ClickHouse.BatchRows > 1_000_000 {
		ps.add("clickhouse.batch_rows", "%d is not between 100 and 1000000", c.ClickHouse.BatchRows)
	}
	if c.ClickHouse.PartsPerSecond < 1 || c.ClickHouse.PartsPerSecond > 10_000 {
		ps.add("clickhouse.parts_per_second", "%d is not between 1 and 10000", c.ClickHouse.PartsPerSecond)
	}
	if cl := c.ClickHouse.Cluster; cl != "" && !isIdent(cl) {
		ps.add("clickhouse.cluster", "%q is not a cluster name (letters, digits and _)", cl)
	}
	l := c.Limits
	for _, kv := range []struct {
		key string
		v   int64
	}{{"limits.max_message_bytes", int64(l.MaxMessageBytes)}, {"limits.max_member_bytes", int64(l.MaxMemberBytes)},
		{"limits.max_total_bytes", int64(l.MaxTotalBytes)}, {"limits.max_zip_members", int64(l.MaxZipMembers)},
		{"limits.max_nesting_depth", int64(l.MaxDepth)}, {"limits.max_xml_depth", int64(l.MaxXMLDepth)},
		{"limits.max_records_per_report", int64(l.MaxRecords)}} {
		if kv.v <= 0 {
			ps.add(kv.key, "must be positive, got %d", kv.v)
		}
	}
	for _, kv := range []struct {
		key string
		v   int64
	}{{"limits.max_xml_token_bytes", int64(l.MaxXMLTokenBytes)}, {"limits.max_xml_value_bytes", int64(l.MaxXMLValueBytes)},
		{"limits.max_xml_header_bytes", int64(l.MaxXMLHeaderBytes)}, {"limits.max_results_per_record", int64(l.MaxResultsPerRecord)},
		{"limits.max_decompression_ratio", l.MaxDecompressionRate}, {"limits.max_containers", int64(l.MaxContainers)},
		{"limits.max_mime_parts", int64(l.MaxMIMEParts)}, {"limits.max_header_fields", int64(l.MaxHeaderFields)},
		{"limits.max_header_bytes", int64(l.MaxHeaderBytes)}, {"limits.max_tlsrpt_bytes", int64(l.MaxTLSRPTBytes)},
		{"limits.max_tlsrpt_failure_rows", int64(l.MaxTLSRPTFailureRows)}, {"limits.hash_ahead_bytes", int64(l.HashAheadBytes)},
		{"limits.ingest_inputs_in_hand", int64(l.IngestInputsInHand)}, {"limits.ingest_bytes_in_hand", int64(l.IngestBytesInHand)}} {
		if kv.v < 0 { // 0: the parser's default
			ps.add(kv.key, "must not be negative, got %d", kv.v)
		}
	}
	if c.Gauges.Interval <= 0 {
		return fmt.Errorf("config gauges.interval: must be positive")
	}
	if c.Gauges.LagDays < 0 {
		return fmt.Errorf("config gauges.lag_days: must not be negative")
	}
	if c.Retention < 0 {
		ps.add("retention", "must not be negative")
	}
	if t := time.Duration(c.ReportAuth.DNSTimeout); t <= 0 || t > time.Minute {
		ps.add("report_auth.dns_timeout", "%v is not between 0 and 1m (e.g. 2s)", t)
	}
	if r := c.ReportAuth.Resolver; r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil && strings.ContainsAny(r, ":/ ") {
			ps.add("report_auth.resolver", "%q is not host:port or host (e.g. 127.0.0.1:53)", r)
		}
	}
	c.validatePeriodic(&ps)
	c.validateAttributionFiles(&ps)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		ps.add("log.format", "%q is not text or json", c.Log.Format)
	}
	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			ps.add("http.listen", "%q is not host:port (e.g. 127.0.0.1:9797)", c.HTTP.Listen)
		}
	}
	if c.ShutdownGrace < 0 {
		ps.add("shutdown_grace", "must not be negative")
	}
	c.HTTP.validate(&ps)
	c.validateSources(&ps)
	return ps.err()
}

func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "***" + dsn[i:]
		}
	}
	return dsn
}

// Size is a byte count written as 1048576, "20MiB", "1GiB", "512KiB" or "10MB".
type Size int64

// UnmarshalYAML accepts a number or a string with a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses a byte count with an optional unit (KiB, MiB, GiB, KB, MB, GB).
func ParseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			mult, v = u.mult, strings.TrimSpace(strings.TrimSuffix(v, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (e.g. 20MiB)", v)
	}
	return n * mult, nil
}

// Duration is a time.Duration that also accepts days: "400d", "36h".
type Duration time.Duration

// UnmarshalYAML accepts Go durations and a "d" suffix for days.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses "400d", "12h", "90m" or "0".
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		return 0, nil
	}
	if strings.HasSuffix(v, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 400d)", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 400d)", v)
	}
	return d, nil
}

// PrivacyKey returns the per-installation redaction key: DMARCD_PRIVACY_KEY
// (hex) if set, else the key file, which is created with 32 random bytes
// (mode 0600) when it does not exist yet. Losing the key only means new
// tokens no longer match old ones. A key file, or the folder it is to be
// created in, that other users can write to or that belongs to another user
// is refused (checkKeyPath), and with no key_file, XDG_STATE_HOME nor HOME
// there is no default (DefaultKeyFile).
func (c Config) PrivacyKey() ([]byte, error) {
	if v := os.Getenv("DMARCD_PRIVACY_KEY"); v != "" {
		k, err := hex.DecodeString(strings.TrimSpace(v))
		if err != nil || len(k) < 16 {
			return nil, fmt.Errorf("DMARCD_PRIVACY_KEY: want at least 16 bytes in hex")
		}
		return k, nil
	}
	path := c.Privacy.KeyFile
	if path == "" {
		var err error
		if path, err = DefaultKeyFile(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("config privacy.key_file: %w", err)
		}
	}
	if err := checkKeyPath(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := writeNewKey(path, []byte(hex.EncodeToString(k)+"\n")); err != nil {
			return nil, fmt.Errorf("config privacy.key_file: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config privacy.key_file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("config privacy.key_file %s: want at least 16 bytes in hex", path)
	}
	return k, nil
}

// isIdent reports whether s is a plain ClickHouse identifier
// ([A-Za-z_][A-Za-z0-9_]*).
func isIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// writeNewKey creates path (mode 0600) with data, failing if it exists: a
// file that appeared since the checks is not overwritten nor followed.
func writeNewKey(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
