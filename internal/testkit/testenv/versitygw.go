package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvS3Endpoint is the variable scripts/versitygw.sh prints with the URL of
// the S3 server it started.
const EnvS3Endpoint = "DMARCD_TEST_S3_ENDPOINT"

// S3 starts an S3 server for this test (versitygw with its posix backend,
// through scripts/versitygw.sh, serving a temporary folder on loopback) and
// returns its URL and root credentials. The server is stopped when the test
// ends. The first call on a machine builds versitygw with `go install` into
// a cache folder, which takes minutes.
//
// When the server cannot be had the test fails if CI=true and is skipped
// otherwise; under -short it is skipped.
func S3(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	return s3Server(t, "")
}

// S3WithWebhook is S3 with bucket event notifications sent to webhookURL.
func S3WithWebhook(t testing.TB, webhookURL string) (endpoint, accessKey, secretKey string) {
	t.Helper()
	return s3Server(t, webhookURL)
}

func s3Server(t testing.TB, webhook string) (endpoint, accessKey, secretKey string) {
	t.Helper()
	skipShort(t, "an S3 server")
	root := ModuleRoot()
	if root == "" {
		unavailable(t, "versitygw: module root (go.mod) not found, so scripts/versitygw.sh is not either")
	}
	sh := filepath.Join(root, "scripts", "versitygw.sh")
	dir, err := os.MkdirTemp("", "dmarcd-test-versitygw-")
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "bash", sh, "stop", dir).CombinedOutput(); err != nil {
			t.Logf("versitygw: stop: %v: %s", err, out)
		}
		os.RemoveAll(dir)
	}
	// Building takes minutes the first time.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", sh, "start", dir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("VERSITYGW_OWNER_PID=%d", os.Getpid()))
	if webhook != "" {
		cmd.Env = append(cmd.Env, "VERSITYGW_EVENT_WEBHOOK_URL="+webhook)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		stop()
		unavailable(t, fmt.Sprintf("versitygw: %s start: %v: %s", sh, err, strings.TrimSpace(stderr.String())))
	}
	t.Cleanup(stop)
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = v
		}
	}
	endpoint, accessKey, secretKey = vals[EnvS3Endpoint], vals["AWS_ACCESS_KEY_ID"], vals["AWS_SECRET_ACCESS_KEY"]
	if endpoint == "" || accessKey == "" || secretKey == "" {
		t.Fatalf("versitygw: %s start printed no endpoint or credentials: %q", sh, out)
	}
	return endpoint, accessKey, secretKey
}
