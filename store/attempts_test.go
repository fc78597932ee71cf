package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/store/schema"
)

// openSame opens another store (another instance) on the database of dsn.
func openSame(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kill makes s stop as a killed process does: no more heartbeats, no 'end'
// rows for what it has in hand, now or at Close.
func kill(s *Store) {
	a := s.attempts
	a.mu.Lock()
	started, closed := a.started, a.closed
	a.closed = true
	clear(a.inHand)
	a.pending = nil
	a.mu.Unlock()
	if closed {
		return
	}
	close(a.stop)
	if started {
		<-a.done
	}
}

// setClock makes s's attempt rows and ages read now+d.
func setClock(s *Store, d time.Duration) {
	s.attempts.mu.Lock()
	s.attempts.clock = func() time.Time { return time.Now().Add(d) }
	s.attempts.mu.Unlock()
}

func begin(t testing.TB, s *Store, source, id string) int {
	t.Helper()
	n, err := s.BeginAttempt(context.Background(), source, id)
	if err != nil {
		t.Fatalf("BeginAttempt(%s, %.40s): %v", source, id, err)
	}
	return n
}

func end(t testing.TB, s *Store, source, id string) {
	t.Helper()
	if err := s.EndAttempt(context.Background(), source, id); err != nil {
		t.Fatalf("EndAttempt(%s, %.40s): %v", source, id, err)
	}
}

func TestAttemptsOfDeadInstancesCountAsUnfinished(t *testing.T) {
	s1, dsn := open(t, Options{})
	const src, id = "imap", "INBOX/1234/57"
	if n := begin(t, s1, src, id); n != 0 {
		t.Fatalf("first attempt: %d unfinished, want 0", n)
	}
	kill(s1) // the input got the process killed

	// The restarted process cannot tell yet whether the first one is dead.
	s2 := openSame(t, dsn)
	if n := begin(t, s2, src, id); n != 0 {
		t.Errorf("attempt right after the death: %d unfinished, want 0 until attemptStale", n)
	}
	end(t, s2, src, id) // this one failed with an error: ended
	setClock(s2, attemptStale+2*time.Second)
	if n := begin(t, s2, src, id); n != 1 {
		t.Errorf("attempt after attemptStale: %d unfinished, want 1 (the dead instance's)", n)
	}
	kill(s2) // died again, with its second attempt in hand

	s3 := openSame(t, dsn)
	setClock(s3, 2*(attemptStale+2*time.Second))
	if n := begin(t, s3, src, id); n != 2 {
		t.Errorf("attempt after two deaths: %d unfinished, want 2", n)
	}
	if n := begin(t, s3, "imap", "INBOX/1234/58"); n != 0 {
		t.Errorf("another input: %d unfinished, want 0", n)
	}
	if n := begin(t, s3, "s3", id); n != 0 {
		t.Errorf("the same ID in another source: %d unfinished, want 0", n)
	}
}

func TestAttemptsOfLiveInstancesDoNotCount(t *testing.T) {
	s1, dsn := open(t, Options{})
	const src, id = "s3", "reports/google.com!example.com!1700000000!1700086399.xml.gz"
	setClock(s1, -time.Hour) // its begin row is an hour old
	begin(t, s1, src, id)

	s2 := openSame(t, dsn)
	if n := begin(t, s2, src, id); n != 1 {
		t.Fatalf("an hour-old attempt without heartbeat: %d unfinished, want 1", n)
	}
	end(t, s2, src, id)

	// s1 still holds the input and beats: alive, it does not count.
	setClock(s1, 0)
	if err := s1.writeBeats(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if n := begin(t, s2, src, id); n != 0 {
		t.Errorf("an attempt whose instance beats: %d unfinished, want 0", n)
	}
	end(t, s2, src, id)

	// Its own attempts never count for the instance that asks.
	if n := begin(t, s1, src, id); n != 0 {
		t.Errorf("own attempts in hand: %d unfinished, want 0", n)
	}

	// Ended attempts do not count, whoever ended them and however old.
	end(t, s1, src, id)
	end(t, s1, src, id)
	s3 := openSame(t, dsn)
	setClock(s3, time.Hour)
	if n := begin(t, s3, src, id); n != 0 {
		t.Errorf("after every attempt ended: %d unfinished, want 0", n)
	}
}

func TestTheHeartbeatRunsWhileAnInputIsInHand(t *testing.T) {
	s, _ := open(t, Options{})
	s.attempts.beat = 20 * time.Millisecond // before the first attempt starts the heartbeat
	begin(t, s, "spool", "report.xml")
	deadline := time.Now().Add(time.Minute)
	for queryUint(t, s, "SELECT count() FROM input_attempts WHERE event = 'alive' AND instance = ?", s.Instance()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat row within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClosingAStoreEndsItsAttemptsInHand(t *testing.T) {
	s1, dsn := open(t, Options{})
	begin(t, s1, "imap", "INBOX/1/1")
	begin(t, s1, "imap", "INBOX/1/1")
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSame(t, dsn)
	setClock(s2, time.Hour)
	if n := begin(t, s2, "imap", "INBOX/1/1"); n != 0 {
		t.Errorf("after a clean shutdown: %d unfinished, want 0 (a shutdown is not a death)", n)
	}
	if n := queryUint(t, s2, "SELECT count() FROM input_attempts WHERE event = 'end'"); n != 2 {
		t.Errorf("%d end rows, want 2", n)
	}
}

func TestEndAttemptWithoutBeginWritesNothing(t *testing.T) {
	s, _ := open(t, Options{})
	end(t, s, "imap", "INBOX/9/9")
	if n := queryUint(t, s, "SELECT count() FROM input_attempts"); n != 0 {
		t.Errorf("%d rows, want 0", n)
	}
}

// A sender names the S3 object or the file: an ID of any length is stored
// as a hash beyond maxAttemptID, so the count's query stays small.
func TestAHugeInputIDIsCountedByItsHash(t *testing.T) {
	s1, dsn := open(t, Options{})
	id := strings.Repeat("k", 300<<10)
	begin(t, s1, "s3", id)
	kill(s1)
	s2 := openSame(t, dsn)
	setClock(s2, attemptStale+2*time.Second)
	if n := begin(t, s2, "s3", id); n != 1 {
		t.Errorf("huge ID: %d unfinished, want 1", n)
	}
	if n := queryUint(t, s2, "SELECT max(length(input_id)) FROM input_attempts"); n > maxAttemptID {
		t.Errorf("stored input_id of %d bytes, want at most %d", n, maxAttemptID)
	}
}

func TestInputAttemptsMigrationRunsAgainWithoutEffect(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	begin(t, s, "imap", "INBOX/1/1")
	stmts, err := s.target().MigrationStatements(schema.Migration{Version: 14, Name: "input_attempts", File: "migrations/0014_input_attempts.sql"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatalf("running 0014 again: %v", err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, s, "SELECT count() FROM schema_migrations WHERE version = 14"); n != 1 {
		t.Errorf("schema_migrations lists 0014 %d times, want 1", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM input_attempts"); n != 1 {
		t.Errorf("%d attempt rows after migrating again, want 1", n)
	}
}

func TestBeginAttemptsCountsEachInputOfAChunkAsBeginAttemptDoes(t *testing.T) {
	s1, dsn := open(t, Options{})
	const src = "imap"
	ids := []string{"INBOX/1/10", "INBOX/1/11", "INBOX/1/12"}
	if n := begin(t, s1, src, ids[0]); n != 0 {
		t.Fatalf("first attempt: %d unfinished, want 0", n)
	}
	if n := begin(t, s1, src, ids[2]); n != 0 {
		t.Fatalf("first attempt: %d unfinished, want 0", n)
	}
	kill(s1) // died with ids[0] and ids[2] in hand

	s2 := openSame(t, dsn)
	setClock(s2, attemptStale+2*time.Second)
	got, err := s2.BeginAttempts(context.Background(), src, ids)
	if err != nil {
		t.Fatalf("BeginAttempts: %v", err)
	}
	if want := []int{1, 0, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("BeginAttempts = %v, want %v", got, want)
	}
	if err := s2.EndAttempts(context.Background(), src, ids); err != nil {
		t.Fatalf("EndAttempts: %v", err)
	}
	if len(s2.attempts.inHand) != 0 {
		t.Errorf("after EndAttempts %d attempts in hand, want none", len(s2.attempts.inHand))
	}
	kill(s2) // ended: its attempts do not count

	s3 := openSame(t, dsn)
	setClock(s3, 2*(attemptStale+2*time.Second))
	got, err = s3.BeginAttempts(context.Background(), src, ids)
	if err != nil {
		t.Fatalf("BeginAttempts: %v", err)
	}
	if want := []int{1, 0, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after an instance that ended them: BeginAttempts = %v, want %v (only the dead one's)", got, want)
	}
}

func alone(t testing.TB, s *Store, source, id string) int {
	t.Helper()
	n, err := s.AloneAttempt(context.Background(), source, id)
	if err != nil {
		t.Fatalf("AloneAttempt(%s, %.40s): %v", source, id, err)
	}
	return n
}

func TestOnlyDeathsOfAnAttemptMarkedAloneCountAsItsOwn(t *testing.T) {
	s1, dsn := open(t, Options{})
	const src, id = "s3", "s3://b/poison#1"
	begin(t, s1, src, id) // in hand with others: a death says nothing of it
	kill(s1)

	s2 := openSame(t, dsn)
	setClock(s2, attemptStale+2*time.Second)
	if n := begin(t, s2, src, id); n != 1 {
		t.Fatalf("attempt after a death in a group: %d unfinished, want 1", n)
	}
	if n := alone(t, s2, src, id); n != 0 {
		t.Errorf("deaths alone after a death in a group: %d, want 0", n)
	}
	kill(s2) // died with it alone

	s3 := openSame(t, dsn)
	setClock(s3, 2*(attemptStale+2*time.Second))
	if n := begin(t, s3, src, id); n != 2 {
		t.Errorf("attempt after two deaths: %d unfinished, want 2", n)
	}
	if n := alone(t, s3, src, id); n != 1 {
		t.Errorf("deaths alone: %d, want 1 (the second death only)", n)
	}
	end(t, s3, src, id)
	if _, err := s3.AloneAttempt(context.Background(), src, id); err == nil {
		t.Error("AloneAttempt without an attempt in hand: no error")
	}
}
