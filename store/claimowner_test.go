package store

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// deadPID returns the PID of a process of this machine that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func ownerOf(pid int, token string) string {
	return claimProcess.host + "|" + claimProcess.pidNS + "|" + strconv.Itoa(pid) + "|" + token
}

// TestAClaimOwnerIsDeadOnlyWhenThisMachineKnowsIt pins the rule that lets a
// restarted process take a dead writer's claim at once: only a process of
// this machine and PID namespace that is gone is dead; anything else waits
// for the claim to go stale.
func TestAClaimOwnerIsDeadOnlyWhenThisMachineKnowsIt(t *testing.T) {
	if claimProcess.host == "" || claimProcess.pidNS == "" {
		t.Skip("no host name or PID namespace to judge by")
	}
	dead := deadPID(t)
	for owner, want := range map[string]bool{
		ownerOf(dead, "x"):                            true,  // ended
		ownerOf(claimProcess.pid, "earlier-run"):      true,  // this PID, another run (PID 1 in a container)
		ownerOf(claimProcess.pid, claimProcess.token): false, // this process: alive
		ownerOf(1, "x"):                               false, // init runs
		"other-host|" + claimProcess.pidNS + "|" + strconv.Itoa(dead) + "|x": false,
		claimProcess.host + "|pid:[1]|" + strconv.Itoa(dead) + "|x":          false,
		"": false, "a|b|c": false,
	} {
		if got := ownerDead(owner); got != want {
			t.Errorf("ownerDead(%q) = %v, want %v", owner, got, want)
		}
	}
}

// TestAClaimOfAWriterThatDiedOnThisMachineIsTakenAtOnce: a process
// restarted after a SIGKILL mid-write finds the dead writer's claim, fresh
// by its heartbeat, and takes it in seconds instead of waiting claimStale
// (30 s); Open drops such a claim too.
func TestAClaimOfAWriterThatDiedOnThisMachineIsTakenAtOnce(t *testing.T) {
	if claimProcess.host == "" || claimProcess.pidNS == "" {
		t.Skip("no host name or PID namespace to judge by")
	}
	s, dsn := open(t, Options{})
	ctx := context.Background()
	h := header("google.com", "dead-owner", "example.com", jan2024)
	claim := claimTable(aggregate.Key(h))
	create := func(name, owner string) {
		t.Helper()
		for _, q := range []string{"CREATE TABLE " + name + " (t DateTime, owner String DEFAULT '') ENGINE = Memory",
			"INSERT INTO " + name + " (t, owner) SELECT now(), '" + owner + "'"} {
			if err := s.conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	create(claim, ownerOf(deadPID(t), "x"))
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, claimStale/2)
	defer cancel()
	if _, err := s.WriteAggregate(wctx, h, InputMeta{Source: "file"}, genRows(3, "example.com")); err != nil {
		t.Fatalf("the write waited for the dead writer's claim: %v", err)
	}
	t.Logf("took the dead writer's claim in %v", time.Since(start).Round(time.Millisecond))

	live := claimTable("live owner")
	create(claim, ownerOf(deadPID(t), "x"))
	create(live, ownerOf(claimProcess.pid, claimProcess.token))
	s2, err := Open(ctx, dsn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", claim); n != 0 {
		t.Error("Open kept the claim of a writer that died")
	}
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", live); n != 1 {
		t.Error("Open dropped the claim of a live writer")
	}
}
