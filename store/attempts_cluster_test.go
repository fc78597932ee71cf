package store

import (
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// Two instances, each on its own server of a 2-shard cluster: the attempt
// that one of them died with counts for the other, whichever shard holds
// the input's rows; so does its mark of an attempt taken alone.
func TestAnAttemptThatKilledAClusterInstanceCountsOnTheOtherServer(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	s1 := openClusterStore(t, d, 1)
	s2 := openClusterStore(t, d, 2)
	for _, id := range []string{"INBOX/1/1", "INBOX/1/2", "INBOX/1/3", "INBOX/1/4"} {
		begin(t, s1, "imap", id)
		if id == "INBOX/1/3" {
			alone(t, s1, "imap", id)
		}
	}
	kill(s1)
	setClock(s2, attemptStale+2*time.Second)
	for _, id := range []string{"INBOX/1/1", "INBOX/1/2", "INBOX/1/3", "INBOX/1/4"} {
		if n := begin(t, s2, "imap", id); n != 1 {
			t.Errorf("%s: %d unfinished on the other server, want 1", id, n)
		}
		want := 0
		if id == "INBOX/1/3" {
			want = 1
		}
		if n := alone(t, s2, "imap", id); n != want {
			t.Errorf("%s: %d unfinished alone on the other server, want %d", id, n, want)
		}
		end(t, s2, "imap", id)
	}
	// The rows of the four inputs spread over both shards (sipHash64 of
	// source and input_id).
	for node := 1; node <= 2; node++ {
		var n uint64
		if err := nodeConn(t, d, node).QueryRow(t.Context(), "SELECT count() FROM input_attempts_local").Scan(&n); err != nil {
			t.Fatal(err)
		}
		t.Logf("node %d holds %d attempt rows", node, n)
	}
}
