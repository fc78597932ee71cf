package main

import (
	"context"
	"fmt"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/config"
)

// runIngestIMAP processes the backlog of one mailbox (imaps://user@host/Folder).
func runIngestIMAP(ctx context.Context, e *env, p *ingest.Pipeline, cfg config.Config, url string, asJSON bool) int {
	fmt.Fprintln(e.stderr, "dmarcd ingest: imap:// inputs are not available in this build yet")
	return exitUsage
}
