package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

func s3TestClient(endpoint, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func listKeys(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// TestIngestS3SurvivesKill9 kills `dmarcd ingest s3://bucket/incoming/` with
// SIGKILL at random moments, at least 20 times during one run over more than
// 150 objects, then runs it to completion: ClickHouse holds every generated
// report exactly once and every object is in exactly one of processed/ and
// invalid/. A long soak: it runs in make test-long.
func TestIngestS3SurvivesKill9(t *testing.T) {
	testenv.Long(t)
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	endpoint, access, secret := testenv.S3(t)
	c := s3TestClient(endpoint, access, secret)
	ctx := context.Background()
	const bucket = "ses-inbound"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	files, err := gen.Generate(gen.Options{Domain: "example.com", Days: 45, Seed: 17, Start: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	truth := gen.Summarize(files)
	uploaded := map[string]bool{} // key relative to incoming/
	put := func(data []byte) {
		var b [16]byte
		rand.Read(b[:])
		rel := hex.EncodeToString(b[:])
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("incoming/" + rel),
			Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		uploaded[rel] = true
	}
	for _, f := range files {
		put(f.Data)
	}
	for i := range 5 {
		put(fmt.Appendf(nil, "From: shop@example.net\r\nSubject: sale %d\r\n\r\nnot a report\r\n", i))
	}
	if len(uploaded) < 150 {
		t.Fatalf("only %d objects", len(uploaded))
	}

	env := append(os.Environ(), "DMARCD_CLICKHOUSE_DSN="+dsn, "DMARCD_S3_ENDPOINT="+endpoint, "DMARCD_S3_PATH_STYLE=1",
		"AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_EC2_METADATA_DISABLED=true")
	url := "s3://" + bucket + "/incoming/"
	ch := conn(t, dsn)
	kills, midRun := 0, 0
	for kills < 20 {
		cmd := exec.Command(bin, "ingest", "--json", "--source", "s3", url)
		cmd.Env = env
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+mrand.IntN(300)) * time.Millisecond) // a few objects per run at most: 20 kills must land before the end
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills++
		// No pause: the next process starts while the dead one's last
		// INSERT may still be running on the server; store.Open waits for it.
		if bytes.Count(stdout.Bytes(), []byte("\n")) > 0 {
			midRun++
		}
		if len(listKeys(t, c, bucket, "incoming/")) == 0 {
			break
		}
	}
	left := len(listKeys(t, c, bucket, "incoming/"))
	t.Logf("%d kills, %d after some objects were done; %d of %d objects still pending before the final run",
		kills, midRun, left, len(uploaded))
	if kills < 20 || left == 0 {
		t.Errorf("the kills did not all land during the run (%d kills, %d pending at the end): tune the delays", kills, left)
	}

	cmd := exec.Command(bin, "ingest", "--json", "--source", "s3", url)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var o struct{ Input, Status, Reason string }
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if o.Status != "stored" && o.Status != "duplicate" {
			t.Logf("final run: %s %s: %s", o.Input, o.Status, o.Reason)
		}
		if !strings.HasPrefix(o.Input, "s3://"+bucket+"/incoming/") {
			t.Errorf("input name %q", o.Input)
		}
	}

	reports, records, messages := counts(t, ch)
	if reports != uint64(truth.Reports) || records != uint64(truth.Records) || messages != truth.Messages {
		t.Fatalf("after kill -9 and rerun ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			reports, records, messages, truth.Reports, truth.Records, truth.Messages)
	}
	if left := listKeys(t, c, bucket, "incoming/"); len(left) != 0 {
		t.Errorf("still pending after the final run: %v", left)
	}
	place := map[string]string{}
	for _, p := range []string{"processed/", "invalid/"} {
		for _, k := range listKeys(t, c, bucket, p) {
			rel := strings.TrimPrefix(k, p)
			if place[rel] != "" {
				t.Errorf("%s is in %s and %s", rel, place[rel], p)
			}
			place[rel] = p
			if !uploaded[rel] {
				t.Errorf("%s%s was never uploaded", p, rel)
			}
		}
	}
	var invalid int
	for rel := range uploaded {
		switch place[rel] {
		case "":
			t.Errorf("%s is nowhere", rel)
		case "invalid/":
			invalid++
		}
	}
	if invalid != 5 {
		t.Errorf("%d objects in invalid/, want the 5 non-report mails", invalid)
	}
}

// TestIngestS3Usage rejects a malformed bucket URL with exit 2, and names the
// endpoint when it cannot be reached (exit 1).
func TestIngestS3Usage(t *testing.T) {
	for _, u := range []string{"s3://", "s3:///prefix", "s3://b/p?x=1"} {
		if _, err := s3ConfigFromURL(u, func(string) string { return "" }); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	c, err := s3ConfigFromURL("s3://bucket/in/coming/", func(k string) string {
		return map[string]string{envS3Endpoint: "http://127.0.0.1:9", envS3PathStyle: "1", envS3Mode: "leave"}[k]
	})
	if err != nil || c.Bucket != "bucket" || c.Prefix != "in/coming/" || !c.PathStyle || c.Mode != "leave" || c.Endpoint != "http://127.0.0.1:9" {
		t.Errorf("%+v %v", c, err)
	}
	bin := buildDmarcd(t)
	cmd := exec.Command(bin, "ingest", "s3://bucket/incoming/")
	cmd.Env = append(os.Environ(), "DMARCD_CLICKHOUSE_DSN=clickhouse://127.0.0.1:1/dmarc?dial_timeout=200ms",
		"DMARCD_S3_ENDPOINT=http://127.0.0.1:1", "DMARCD_S3_PATH_STYLE=1",
		"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "127.0.0.1:1") {
		t.Errorf("unreachable endpoint: %v\n%s", err, out)
	}
}
