package main

import (
	"context"
	"fmt"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/config"
)

// runIngestS3 processes the pending objects under an S3 prefix (s3://bucket/prefix).
func runIngestS3(ctx context.Context, e *env, p *ingest.Pipeline, cfg config.Config, url string, asJSON bool) int {
	fmt.Fprintln(e.stderr, "dmarcd ingest: s3:// inputs are not available in this build yet")
	return exitUsage
}
