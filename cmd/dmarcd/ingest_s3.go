package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
)

// Environment variables of `dmarcd ingest s3://bucket/prefix`, besides the
// AWS chain's own (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_PROFILE, ...).
const (
	envS3Endpoint  = "DMARCD_S3_ENDPOINT"   // S3-compatible server URL; unset for AWS
	envS3PathStyle = "DMARCD_S3_PATH_STYLE" // "1" or "true": path-style addressing
	envS3Mode      = "DMARCD_S3_MODE"       // "move" (default) or "leave"
)

// runIngestS3 processes the pending objects under an S3 prefix
// (s3://bucket/prefix) once, as the daemon's S3 source does: objects are
// moved to processed/ or invalid/ (or, with DMARCD_S3_MODE=leave, left and
// recorded) after their reports are committed.
func runIngestS3(ctx context.Context, e *env, p *ingest.Pipeline, cfg config.Config, rawURL string, asJSON bool) int {
	sc, err := s3ConfigFromURL(rawURL, os.Getenv)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd ingest:", err)
		return exitUsage
	}
	sc.MaxObjectBytes = wire.MaxMessageBytes(cfg)
	sc.Attempts = ingest.AttemptLogOf(p) // an object that killed earlier runs is set aside unread
	src, err := ingest.NewS3Source(sc, p, e.logger(cfg))
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd ingest:", err)
		return exitUsage
	}
	rep := newReporter(e, asJSON)
	err = src.Once(ctx, func(out ingest.Outcome) { rep.add(out) })
	rep.finish("objects")
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "dmarcd ingest:", err)
		return exitFail
	}
	if rep.err != nil {
		fmt.Fprintln(e.stderr, "dmarcd ingest:", rep.err)
		return exitFail
	}
	if rep.tally[ingest.Error] > 0 || ctx.Err() != nil {
		return exitFail
	}
	return exitOK
}

// s3ConfigFromURL reads s3://bucket/prefix and the DMARCD_S3_* variables.
func s3ConfigFromURL(raw string, getenv func(string) string) (ingest.S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return ingest.S3Config{}, fmt.Errorf("%q: want s3://bucket/prefix", raw)
	}
	c := ingest.S3Config{
		Name:     raw,
		Bucket:   u.Host,
		Prefix:   strings.TrimPrefix(u.Path, "/"),
		Endpoint: getenv(envS3Endpoint),
		Mode:     getenv(envS3Mode),
	}
	if v := getenv(envS3PathStyle); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want 1 or 0", envS3PathStyle, v)
		}
		c.PathStyle = b
	}
	return c, nil
}
