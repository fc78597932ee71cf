package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/hostile"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// TestServeSetsAsideAMailThatKillsTheProcess feeds `dmarcd serve` a mail
// that kills whatever process holds it (as one that gets it OOM-killed
// would: DMARCD_FAILPOINT=report:ID), ahead of a good mail, restarting the
// process after each death as systemd would. The good mail is stored after
// the first death (the killer is then taken alone), and after the second
// death the killer is set aside unread as retries_exhausted: the process
// stays up and the mailbox ends empty, instead of dying on it forever.
func TestServeSetsAsideAMailThatKillsTheProcess(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	addr, user, pass := testenv.Dovecot(t)
	appendAll(t, addr, user, pass, "INBOX", []input{
		{"killer.eml", hostile.GoodMail("killer")},
		{"good.eml", hostile.GoodMail("good-behind-the-killer")},
	})
	dir := t.TempDir()
	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`http: {listen: %s}
owned_domains: [example.com]
report_auth: {enabled: false}
sources:
  - {name: mailbox, type: imap, address: %s, tls: none, username: %s, poll_interval: 1s, concurrency: 1}
`, httpAddr, addr, user))
	// A death counts once the dead process's newest attempt row is three
	// beats old: 1 s beats keep the test short.
	env := []string{"DMARCD_CLICKHOUSE_DSN=" + dsn, "DMARCD_SOURCES_MAILBOX_PASSWORD=" + pass,
		"DMARCD_FAILPOINT=report:killer", "DMARCD_ATTEMPT_BEAT=1s"}
	c := conn(t, dsn)
	ctx := context.Background()

	deaths := 0
	var d *daemonProc
	for {
		d = startServe(t, bin, cfg, httpAddr, env...)
		died := false
		waitFor(t, "the process to die on the killer or the INBOX to empty", 90*time.Second, func() bool {
			select {
			case <-d.done:
				died = true
				return true
			default:
			}
			n, err := imapCounts(addr, user, pass, "INBOX")
			return err == nil && n["INBOX"] == 0
		})
		if !died {
			break
		}
		if deaths++; deaths > 2 {
			t.Fatalf("the process died %d times on the killer mail: it is never set aside", deaths)
		}
		// Wait until the dead process's attempt is stale on the server's
		// clock (3 beats, in whole seconds), so the next start counts it.
		waitFor(t, "the dead attempt to go stale", 30*time.Second, func() bool {
			var age int64
			err := c.QueryRow(ctx, "SELECT toInt64(now()) - toInt64(max(time)) FROM input_attempts").Scan(&age)
			return err == nil && age > 3
		})
	}
	d.waitReady(t, 200, 30*time.Second)
	if deaths != 2 {
		t.Errorf("the killer was set aside after %d deaths, want 2", deaths)
	}
	n := mustCounts(t, addr, user, pass, processedBox, invalidBox)
	if n[processedBox] != 1 || n[invalidBox] != 1 {
		t.Errorf("folders %v: want the good mail processed and the killer invalid", n)
	}
	var stored []string
	rows, err := c.Query(ctx, "SELECT report_id FROM aggregate_reports ORDER BY report_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, id)
	}
	if len(stored) != 1 || stored[0] != "good-behind-the-killer" {
		t.Errorf("stored reports %q, want only the good one", stored)
	}
	var setAside uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM inputs WHERE status = 'invalid' AND reason_code = 'retries_exhausted'").Scan(&setAside); err != nil {
		t.Fatal(err)
	}
	if setAside != 1 {
		t.Errorf("%d inputs set aside as retries_exhausted, want the killer", setAside)
	}
	d.stop(t)
}

// TestServeSetsAsideKillersAmongManyInnocentInputsAndStoresEveryInnocent
// feeds `dmarcd serve`, at the default concurrency (32) of its IMAP and
// spool sources, a mail and a spool file that kill whatever process holds
// them (DMARCD_FAILPOINT=report:killer) among 40 innocent mails and 40
// innocent files, restarting the process after each death as systemd
// would. A death with many inputs in hand is charged to none of them: the
// inputs in hand then are processed one at a time, with nothing else in
// hand, and only the killers die alone. At the end both killers are set
// aside as retries_exhausted and every innocent input is stored exactly
// once: none is set aside for having been in hand beside a killer.
func TestServeSetsAsideKillersAmongManyInnocentInputsAndStoresEveryInnocent(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	addr, user, pass := testenv.Dovecot(t)
	const innocents = 40
	var mails, files []input
	for i := range innocents {
		if i == innocents/3 {
			mails = append(mails, input{"killer.eml", hostile.GoodMail("killer")})
			files = append(files, input{"killer.eml", hostile.GoodMail("killer")})
		}
		mails = append(mails, input{fmt.Sprintf("mail-%d.eml", i), hostile.GoodMail(fmt.Sprintf("innocent-mail-%d", i))})
		files = append(files, input{fmt.Sprintf("file-%d.eml", i), hostile.GoodMail(fmt.Sprintf("innocent-file-%d", i))})
	}
	appendAll(t, addr, user, pass, "INBOX", mails)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	dropAll(t, spool, files)
	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`http: {listen: %s}
owned_domains: [example.com]
report_auth: {enabled: false}
sources:
  - {name: mailbox, type: imap, address: %s, tls: none, username: %s, poll_interval: 1s}
  - {name: drop, type: spool, path: %s, settle: 200ms, poll_interval: 1s}
`, httpAddr, addr, user, spool))
	env := []string{"DMARCD_CLICKHOUSE_DSN=" + dsn, "DMARCD_SOURCES_MAILBOX_PASSWORD=" + pass,
		"DMARCD_FAILPOINT=report:killer", "DMARCD_ATTEMPT_BEAT=1s"}
	c := conn(t, dsn)
	ctx := context.Background()

	// Each killer dies at most once among others and twice alone.
	const maxDeaths = 8
	deaths := 0
	var d *daemonProc
	for {
		d = startServe(t, bin, cfg, httpAddr, env...)
		died := false
		waitFor(t, "the process to die on a killer or the INBOX and spool to empty", 90*time.Second, func() bool {
			select {
			case <-d.done:
				died = true
				return true
			default:
			}
			left, _, _ := spoolCounts(t, spool)
			n, err := imapCounts(addr, user, pass, "INBOX")
			return err == nil && n["INBOX"] == 0 && left == 0
		})
		if !died {
			break
		}
		if deaths++; deaths > maxDeaths {
			t.Fatalf("the process died %d times: the killers are never set aside", deaths)
		}
		waitFor(t, "the dead attempts to go stale", 30*time.Second, func() bool {
			var age int64
			err := c.QueryRow(ctx, "SELECT toInt64(now()) - toInt64(max(time)) FROM input_attempts").Scan(&age)
			return err == nil && age > 3
		})
	}
	d.waitReady(t, 200, 30*time.Second)
	t.Logf("settled after %d deaths", deaths)
	checkFolders(t, addr, user, pass, "INBOX", processedBox, invalidBox, len(mails), 1)
	checkSpool(t, spool, len(files), 1)

	rows, err := c.Query(ctx, "SELECT report_id, count() FROM aggregate_reports GROUP BY report_id")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	for i := range innocents {
		for _, id := range []string{fmt.Sprintf("innocent-mail-%d", i), fmt.Sprintf("innocent-file-%d", i)} {
			if stored[id] != 1 {
				t.Errorf("report %s stored %d times, want once", id, stored[id])
			}
		}
	}
	if len(stored) != 2*innocents {
		t.Errorf("%d reports stored, want the %d innocent ones", len(stored), 2*innocents)
	}
	var setAside uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM inputs WHERE status = 'invalid' AND reason_code = 'retries_exhausted'").Scan(&setAside); err != nil {
		t.Fatal(err)
	}
	if setAside != 2 {
		t.Errorf("%d inputs set aside as retries_exhausted, want the two killers", setAside)
	}
	d.stop(t)
}
