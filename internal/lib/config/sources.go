package config

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dmarcd/dmarcd/internal/lib/oauth"
)

// Source types.
const (
	SourceIMAP  = "imap"
	SourceSpool = "spool"
	SourceS3    = "s3"
)

// Source is one entry of sources: where the daemon reads reports from. Name
// and Type are required; the other keys belong to one type each (see
// sourceKeys) and a key of another type is an error.
type Source struct {
	Name         string   `yaml:"name"` // [A-Za-z0-9][A-Za-z0-9_-]*: log and metric label, env DMARCD_SOURCES_<NAME>_<KEY>
	Type         string   `yaml:"type"` // imap | spool | s3
	PollInterval Duration `yaml:"poll_interval"`

	// imap
	Address            string `yaml:"address"` // host:port
	TLS                string `yaml:"tls"`     // implicit | starttls | none (loopback only)
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	Username           string `yaml:"username"`
	Password           string `yaml:"password"`      // better from DMARCD_SOURCES_<NAME>_PASSWORD or password_file
	PasswordFile       string `yaml:"password_file"` // read at start and at each reload
	Mailbox            string `yaml:"mailbox"`
	ProcessedMailbox   string `yaml:"processed_mailbox"`
	InvalidMailbox     string `yaml:"invalid_mailbox"`
	// Concurrency (imap, spool, s3): mails, files or objects in hand at
	// once; default ingest.DefaultIMAPConcurrency, DefaultSpoolConcurrency,
	// DefaultS3Concurrency.
	Concurrency int `yaml:"concurrency"`
	// Shared (imap, s3): several instances read this source; each pass
	// begins at a random mail or object, so that they mostly take
	// different ones (docs/cluster.md).
	Shared bool `yaml:"shared"`
	// OAuth logs in with an OAuth 2.0 token instead of the password; its
	// keys are oauth.Config's (mechanism, token_file, token_url,
	// client_id, client_secret, client_secret_file, refresh_token,
	// refresh_token_file, scopes, client_credentials,
	// service_account_file, subject).
	OAuth *oauth.Config `yaml:"oauth"`

	// spool
	Path   string   `yaml:"path"`   // the folder files are dropped into
	Settle Duration `yaml:"settle"` // a file unchanged this long is complete

	// s3
	Bucket          string `yaml:"bucket"`
	Prefix          string `yaml:"prefix"`
	Region          string `yaml:"region"`
	Endpoint        string `yaml:"endpoint"` // e.g. http://127.0.0.1:7070 for an S3-compatible server
	PathStyle       bool   `yaml:"path_style"`
	Mode            string `yaml:"mode"` // move | leave
	ProcessedPrefix string `yaml:"processed_prefix"`
	InvalidPrefix   string `yaml:"invalid_prefix"`

	set map[string]bool // keys given in the file or the environment
}

func (s *Source) recordKey(key string) {
	if s.set == nil {
		s.set = map[string]bool{}
	}
	s.set[key] = true
}

// sourceKeys are the keys each source type accepts besides name and type.
var sourceKeys = map[string][]string{
	SourceIMAP: {"poll_interval", "address", "tls", "ca_file", "insecure_skip_verify", "username", "password",
		"password_file", "mailbox", "processed_mailbox", "invalid_mailbox", "oauth", "concurrency", "shared"},
	SourceSpool: {"poll_interval", "path", "settle", "concurrency"},
	SourceS3: {"poll_interval", "bucket", "prefix", "region", "endpoint", "path_style", "mode",
		"processed_prefix", "invalid_prefix", "shared", "concurrency"},
}

// Label is how the source is named in logs, metrics and the inputs table:
// "imap:reports".
func (s Source) Label() string { return s.Type + ":" + s.Name }

// Equal reports whether two source entries configure the same thing
// (secrets included), so that a reload restarts only the changed ones.
func (s Source) Equal(o Source) bool {
	s.set, o.set = nil, nil
	return reflect.DeepEqual(s, o)
}

// defaults sets the keys of s left unset to those of its type in d. An
// explicit settle of 0 is kept (a spool that takes files at once).
func (s *Source) defaults(d Defaults) {
	switch s.Type {
	case SourceIMAP:
		def(&s.TLS, d.IMAP.TLS)
		def(&s.Mailbox, d.IMAP.Mailbox)
		def(&s.ProcessedMailbox, d.IMAP.ProcessedMailbox)
		def(&s.InvalidMailbox, d.IMAP.InvalidMailbox)
		def(&s.PollInterval, d.IMAP.PollInterval)
		def(&s.Concurrency, d.IMAP.Concurrency)
	case SourceSpool:
		def(&s.PollInterval, d.Spool.PollInterval)
		if !s.set["settle"] {
			s.Settle = d.Spool.Settle
		}
		def(&s.Concurrency, d.Spool.Concurrency)
	case SourceS3:
		def(&s.Mode, d.S3.Mode)
		def(&s.ProcessedPrefix, d.S3.ProcessedPrefix)
		def(&s.InvalidPrefix, d.S3.InvalidPrefix)
		def(&s.PollInterval, d.S3.PollInterval)
		def(&s.Concurrency, d.S3.Concurrency)
	}
}

// def sets *v to d when *v is unset (its zero value).
func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// readSecrets reads password_file unless the password came from the file
// or the environment itself (which then wins).
func (s *Source) readSecrets(ps *Problems) {
	if s.PasswordFile == "" || s.Password != "" {
		return
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		ps.add(s.key("password_file"), "%v", err)
		return
	}
	s.Password = strings.TrimRight(string(b), "\r\n")
	if s.Password == "" {
		ps.add(s.key("password_file"), "%s is empty", s.PasswordFile)
	}
}

func (s Source) key(k string) string {
	if s.Name == "" {
		return "sources[?]." + k
	}
	return "sources[" + s.Name + "]." + k
}

var sourceNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

func (c Config) validateSources(ps *Problems) {
	names := map[string]bool{}
	envNames := map[string]string{}
	spools := map[string]string{}
	for i, s := range c.Sources {
		switch {
		case s.Name == "":
			ps.add("sources["+itoa(i)+"].name", "missing: every source needs a name")
		case !sourceNameRe.MatchString(s.Name):
			ps.add(s.key("name"), "%q: want letters, digits, - and _", s.Name)
		case names[s.Name]:
			ps.add(s.key("name"), "two sources are named %q", s.Name)
		default:
			if o, ok := envNames[EnvName(s.Name)]; ok {
				ps.add(s.key("name"), "%q and %q have the same environment name %s", o, s.Name, EnvName("sources", s.Name))
			}
			envNames[EnvName(s.Name)] = s.Name
		}
		names[s.Name] = true
		allowed, ok := sourceKeys[s.Type]
		if !ok {
			ps.add(s.key("type"), "%q is not imap, spool or s3", s.Type)
			continue
		}
		var extra []string
		for k := range s.set {
			if k != "name" && k != "type" && !slices.Contains(allowed, k) {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		for _, k := range extra {
			ps.add(s.key(k), "not a key of a %s source", s.Type)
		}
		if s.PollInterval < 0 {
			ps.add(s.key("poll_interval"), "must not be negative")
		}
		switch s.Type {
		case SourceIMAP:
			s.validateIMAP(ps)
		case SourceSpool:
			if s.Path == "" {
				ps.add(s.key("path"), "missing: the spool folder")
			} else {
				abs, _ := filepath.Abs(s.Path)
				if o, ok := spools[abs]; ok {
					ps.add(s.key("path"), "%s is also the path of source %q", s.Path, o)
				}
				spools[abs] = s.Name
			}
			if s.Settle < 0 {
				ps.add(s.key("settle"), "must not be negative")
			}
			s.validateInHand(ps)
		case SourceS3:
			if s.Bucket == "" {
				ps.add(s.key("bucket"), "missing")
			}
			if s.Mode != "move" && s.Mode != "leave" {
				ps.add(s.key("mode"), "%q is not move or leave", s.Mode)
			}
			if s.Mode == "move" && (s.ProcessedPrefix == s.InvalidPrefix || s.ProcessedPrefix == s.Prefix || s.InvalidPrefix == s.Prefix) {
				ps.add(s.key("processed_prefix"), "prefix %q, processed_prefix %q and invalid_prefix %q must differ",
					s.Prefix, s.ProcessedPrefix, s.InvalidPrefix)
			}
			s.validateInHand(ps)
		}
	}
}

// validateInHand checks the concurrency of a spool or s3 source: the
// inputs in hand at once, whose small reports the store commits together.
func (s Source) validateInHand(ps *Problems) {
	if s.Concurrency < 1 || s.Concurrency > 256 {
		ps.add(s.key("concurrency"), "%d is not between 1 and 256", s.Concurrency)
	}
}

func (s Source) validateIMAP(ps *Problems) {
	host, _, err := net.SplitHostPort(s.Address)
	if s.Address == "" {
		ps.add(s.key("address"), "missing: host:port of the IMAP server (e.g. imap.gmail.com:993)")
	} else if err != nil {
		ps.add(s.key("address"), "%q is not host:port", s.Address)
	}
	switch s.TLS {
	case "implicit", "starttls":
	case "none":
		if ip := net.ParseIP(host); err == nil && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			ps.add(s.key("tls"), "none is only allowed to a loopback address, not %s", host)
		}
	default:
		ps.add(s.key("tls"), "%q is not implicit, starttls or none", s.TLS)
	}
	if s.Username == "" {
		ps.add(s.key("username"), "missing")
	}
	if s.Concurrency < 1 || s.Concurrency > 64 {
		ps.add(s.key("concurrency"), "%d is not between 1 and 64", s.Concurrency)
	}
	if s.OAuth != nil {
		if err := s.OAuth.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				ps.add(s.key("oauth"), "%s", line)
			}
		}
		if s.Password != "" || s.PasswordFile != "" {
			ps.add(s.key("oauth"), "set either oauth or password (password_file), not both")
		}
	} else if s.Password == "" && s.PasswordFile == "" {
		ps.add(s.key("password"), "missing: set password_file, or %s in the environment (or an oauth block)", EnvName("sources", s.Name, "password"))
	}
	if s.CAFile != "" {
		if _, err := os.Stat(s.CAFile); err != nil {
			ps.add(s.key("ca_file"), "%v", err)
		}
	}
	if s.Mailbox == s.ProcessedMailbox || s.Mailbox == s.InvalidMailbox || s.ProcessedMailbox == s.InvalidMailbox {
		ps.add(s.key("processed_mailbox"), "mailbox %q, processed_mailbox %q and invalid_mailbox %q must differ",
			s.Mailbox, s.ProcessedMailbox, s.InvalidMailbox)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
