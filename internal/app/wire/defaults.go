package wire

import (
	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/product/gauges"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/store"
)

// Defaults of the keys that belong to the daemon and the command line
// themselves rather than to a component (docs/configuration.md).
const (
	// DefaultListen is the default of http.listen: loopback only.
	DefaultListen = "127.0.0.1:9797"
	// DefaultHTTPMaxConnections is the default of http.max_connections.
	DefaultHTTPMaxConnections = 256
	// DefaultShutdownGrace is the default of shutdown_grace: the daemon
	// waits for its sources as long as each lets its input in hand commit.
	DefaultShutdownGrace = ingest.DefaultGrace
	// DefaultAttributionMaxIPs is the default of
	// attribution.max_ips_per_run.
	DefaultAttributionMaxIPs = 1000
	// DefaultReportAuth is the default of report_auth.enabled.
	DefaultReportAuth = true
	// DefaultLogLevel and DefaultLogFormat are the defaults of log.level
	// and log.format.
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
)

// Defaults are the defaults of every key of the configuration, each taken
// from the component that uses it: the store's DSN and batch size, the
// parsers' limits, the sources' mailboxes, prefixes and intervals, the
// timeouts of report authentication and DNS checks, the gauges' interval
// and lag. The keys of the daemon and the command line are the constants
// above.
func Defaults() config.Defaults {
	ex := extract.DefaultLimits()
	return config.Defaults{
		Config: config.Config{
			ClickHouse: config.ClickHouse{DSN: store.DefaultDSN, BatchRows: store.DefaultBatchRows,
				PartsPerSecond: store.DefaultGroupPartsPerSecond},
			Gauges:      config.Gauges{Interval: config.Duration(gauges.DefaultInterval), LagDays: gauges.DefaultLag},
			ReportAuth:  config.ReportAuth{Enabled: DefaultReportAuth, DNSTimeout: config.Duration(enrich.DefaultAuthTimeout)},
			Attribution: config.Attribution{MaxIPsPerRun: DefaultAttributionMaxIPs},
			DNS:         config.DNS{Timeout: config.Duration(dnscheck.DefaultTimeout)},
			Limits: config.Limits{
				MaxMessageBytes: config.Size(ex.MaxMessageBytes),
				MaxMemberBytes:  config.Size(ex.MaxMemberBytes),
				MaxTotalBytes:   config.Size(ex.MaxTotalBytes),
				MaxZipMembers:   ex.MaxZipMembers,
				MaxDepth:        ex.MaxDepth,
				MaxXMLDepth:     aggregate.DefaultMaxDepth,
				MaxRecords:      aggregate.DefaultMaxRecords,
			},
			Log:           config.Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
			HTTP:          config.HTTP{Listen: DefaultListen, MaxConnections: DefaultHTTPMaxConnections},
			ShutdownGrace: config.Duration(DefaultShutdownGrace),
		},
		IMAP: config.Source{TLS: ingest.IMAPTLSImplicit, Mailbox: ingest.DefaultIMAPMailbox,
			ProcessedMailbox: ingest.DefaultIMAPProcessedMailbox, InvalidMailbox: ingest.DefaultIMAPInvalidMailbox,
			PollInterval: config.Duration(ingest.DefaultIMAPPollInterval), Concurrency: ingest.DefaultIMAPConcurrency},
		Spool: config.Source{PollInterval: config.Duration(ingest.DefaultSpoolPollInterval),
			Settle: config.Duration(ingest.DefaultSpoolSettle), Concurrency: ingest.DefaultSpoolConcurrency},
		S3: config.Source{Mode: ingest.S3ModeMove, ProcessedPrefix: ingest.DefaultS3ProcessedPrefix,
			InvalidPrefix: ingest.DefaultS3InvalidPrefix, PollInterval: config.Duration(ingest.DefaultS3PollInterval),
			Concurrency: ingest.DefaultS3Concurrency},
	}
}

// DefaultConfig is the configuration used without a file: Defaults'
// keys outside sources, and no source.
func DefaultConfig() config.Config { return Defaults().Config }

// LoadConfig reads the configuration file path ("" for none) over
// Defaults, then the environment (config.Load), for the command line and
// the daemon alike.
func LoadConfig(path string) (config.Config, error) { return config.Load(path, Defaults()) }
