// Package wire builds the options of dmarcd's components from its
// configuration, in one place for the command line (`dmarcd ingest`,
// `parse`, `check`, `migrate`, `summary`, ...) and the daemon (`dmarcd
// serve`, internal/app/daemon): the store's options, the pipeline's (limits,
// owned domains, privacy, report authentication, metrics), and the options
// of each kind of source. It is part of the composition root: it imports
// the configuration and the components, and neither imports it. It also
// holds the adapter through which the pipeline reports to the metrics
// (Observer).
package wire

import (
	"log/slog"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/store"
)

// StoreOptions are the store.Options of cfg for a writer (`dmarcd
// ingest`, `migrate`, the daemon).
func StoreOptions(cfg config.Config, log *slog.Logger) store.Options {
	return store.Options{Logger: log, Cluster: cfg.ClickHouse.Cluster, BatchRows: cfg.ClickHouse.BatchRows,
		Group: &store.GroupOptions{PartsPerSecond: cfg.ClickHouse.PartsPerSecond}}
}

// ReadStoreOptions are the store.Options of cfg for a command that only
// reads (`dmarcd check`, `summary`, `readiness`): store.Options.ReadOnly.
func ReadStoreOptions(cfg config.Config, log *slog.Logger) store.Options {
	o := StoreOptions(cfg, log)
	o.ReadOnly = true
	return o
}

// Pipeline is what a pipeline needs besides the configuration: what only
// the caller has.
type Pipeline struct {
	Source   string           // the source label stored with every input ("file", "imap:reports")
	Key      []byte           // the privacy key (config.Config.PrivacyKey)
	Verifier *enrich.Verifier // ReportVerifier, shared by the pipelines of a process
	Observer ingest.Observer  // Observer of the process's metrics; nil: none
	Logger   *slog.Logger
}

// PipelineOptions are the ingest.Options of cfg for one source.
func PipelineOptions(cfg config.Config, p Pipeline) ingest.Options {
	lim := LimitsFrom(cfg)
	return ingest.Options{
		Source:       p.Source,
		Extract:      lim.Extract,
		Aggregate:    lim.Aggregate,
		TLSRPT:       lim.TLSRPT,
		MaxHashAhead: lim.HashAhead,
		OwnedDomains: cfg.Owned(),
		Privacy:      ingest.Privacy{Key: p.Key, RedactSubjects: cfg.Privacy.RedactSubjects, KeepBodies: cfg.Privacy.KeepBodies},
		Observer:     p.Observer,
		Verifier:     p.Verifier,
		Logger:       p.Logger,
	}
}

// ReportVerifier returns the authenticator of report mails that
// report_auth configures, nil when it is disabled or has no resolver
// (reports are then stored "unverified"; ingestion goes on).
func ReportVerifier(cfg config.Config, log *slog.Logger) *enrich.Verifier {
	ra := cfg.ReportAuth
	if !ra.Enabled {
		return nil
	}
	v, err := dnsVerifier(ra.Resolver, time.Duration(ra.DNSTimeout))
	if err != nil {
		log.Warn("report_auth: no DNS resolver; reports are stored unverified", "err", err)
		return nil
	}
	return v
}

// MaxMessageBytes is limits.max_message_bytes: the largest mail or object
// a source downloads (a larger one is set aside unread).
func MaxMessageBytes(cfg config.Config) int64 { return int64(cfg.Limits.MaxMessageBytes) }

// SpoolConfig is the ingest.SpoolConfig of the spool source sc.
func SpoolConfig(sc config.Source) ingest.SpoolConfig {
	return ingest.SpoolConfig{Name: sc.Label(), Path: sc.Path,
		PollInterval: time.Duration(sc.PollInterval), Settle: time.Duration(sc.Settle), Concurrency: sc.Concurrency}
}

// IMAPConfig is the ingest.IMAPConfig of the imap source sc of cfg.
func IMAPConfig(cfg config.Config, sc config.Source) ingest.IMAPConfig {
	return ingest.IMAPConfig{Name: sc.Label(), Address: sc.Address, TLS: sc.TLS,
		CAFile: sc.CAFile, InsecureSkipVerify: sc.InsecureSkipVerify, Username: sc.Username,
		Password: sc.Password, OAuth: sc.OAuth, Mailbox: sc.Mailbox, ProcessedMailbox: sc.ProcessedMailbox,
		InvalidMailbox: sc.InvalidMailbox, PollInterval: time.Duration(sc.PollInterval),
		MaxMessageBytes: MaxMessageBytes(cfg), Concurrency: sc.Concurrency, Shared: sc.Shared}
}

// S3Config is the ingest.S3Config of the s3 source sc of cfg.
func S3Config(cfg config.Config, sc config.Source) ingest.S3Config {
	return ingest.S3Config{Name: sc.Label(), Bucket: sc.Bucket, Prefix: sc.Prefix,
		Region: sc.Region, Endpoint: sc.Endpoint, PathStyle: sc.PathStyle, Mode: sc.Mode,
		ProcessedPrefix: sc.ProcessedPrefix, InvalidPrefix: sc.InvalidPrefix,
		PollInterval: time.Duration(sc.PollInterval), MaxObjectBytes: MaxMessageBytes(cfg), Shared: sc.Shared,
		Concurrency: sc.Concurrency}
}
