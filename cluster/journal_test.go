package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func ev(group string, ms int64) proto.Message { return &fluxopb.GroupEvent{Group: group, TimeMs: ms} }

type replayed struct {
	seq uint64
	ms  int64
}

// replayAll returns (sequence, time_ms) of every event after afterSeq.
func replayAll(t *testing.T, j *StreamJournal, actor string, afterSeq uint64) []replayed {
	t.Helper()
	var out []replayed
	err := j.Replay(actor, afterSeq, func(seq uint64, e *fluxopb.JournalEvent) error {
		ge := &fluxopb.GroupEvent{}
		if err := proto.Unmarshal(e.Payload, ge); err != nil {
			return err
		}
		if seq != e.Sequence || e.TypeUrl != "type.googleapis.com/fluxo.v1.GroupEvent" {
			return fmt.Errorf("event %d: seq %d type %s", seq, e.Sequence, e.TypeUrl)
		}
		out = append(out, replayed{seq, ge.TimeMs})
		return nil
	})
	if err != nil {
		t.Fatalf("replay %s after %d: %v", actor, afterSeq, err)
	}
	return out
}

func seqs(rs []replayed) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.seq)
	}
	return out
}

func openJournal(t *testing.T, s *Store) *StreamJournal {
	t.Helper()
	j, err := s.OpenJournal(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJournalAppendReplay(t *testing.T) {
	s := openStore(t, t.TempDir())
	j := openJournal(t, s)
	if got := replayAll(t, j, "a", 0); len(got) != 0 {
		t.Fatalf("empty journal replays %v", got)
	}
	for i, n := range []int{1, 3, 2} {
		var evs []proto.Message
		for k := range n {
			evs = append(evs, ev("g", int64(10*i+k)))
		}
		if _, err := j.Append("a", evs...); err != nil {
			t.Fatal(err)
		}
	}
	if last, err := j.Append("b/odd.name*>", ev("h", 99)); err != nil || last != 1 {
		t.Fatalf("other actor: last %d, %v", last, err)
	}
	got := replayAll(t, j, "a", 0)
	want := []replayed{{1, 0}, {2, 10}, {3, 11}, {4, 12}, {5, 20}, {6, 21}}
	if !slices.Equal(got, want) {
		t.Fatalf("replay %v, want %v", got, want)
	}
	if got := seqs(replayAll(t, j, "a", 3)); !slices.Equal(got, []uint64{4, 5, 6}) {
		t.Fatalf("replay after 3: %v", got)
	}
	if last, err := j.Append("a"); err != nil || last != 6 {
		t.Fatalf("empty append: %d, %v", last, err)
	}

	// A second handle (another process) continues the numbering.
	j2 := openJournal(t, s)
	if last, err := j2.Append("a", ev("g", 30)); err != nil || last != 7 {
		t.Fatalf("second handle appends at %d, %v; want 7", last, err)
	}
	// The first, unclaimed, re-reads after the conflict and continues too.
	if last, err := j.Append("a", ev("g", 31)); err != nil || last != 8 {
		t.Fatalf("first handle after a concurrent append: %d, %v; want 8", last, err)
	}
	// Stop at fn's first error.
	stop := errors.New("stop")
	n := 0
	err := j.Replay("a", 0, func(uint64, *fluxopb.JournalEvent) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("replay stopping: %v after %d", err, n)
	}
}

func TestJournalSnapshotDeleteUpTo(t *testing.T) {
	s := openStore(t, t.TempDir())
	j := openJournal(t, s)
	if err := j.Claim(testCtx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.LoadSnapshot("a"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("no snapshot: %v", err)
	}
	for _, evs := range [][]proto.Message{{ev("g", 1)}, {ev("g", 2), ev("g", 3)}, {ev("g", 4), ev("g", 5)}} {
		if _, err := j.Append("a", evs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []uint64{2, 5} {
		if err := j.SaveSnapshot("a", seq, &fluxopb.GroupEvent{Group: "snap", TimeMs: int64(seq)}); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := j.LoadSnapshot("a")
	if err != nil || snap.Sequence != 5 || snap.TypeUrl != "type.googleapis.com/fluxo.v1.GroupEvent" {
		t.Fatalf("snapshot %v, %v", snap, err)
	}

	// 2 shares a message with 3: it goes all the same.
	if err := j.DeleteUpTo("a", 2); err != nil {
		t.Fatal(err)
	}
	if got := seqs(replayAll(t, j, "a", 0)); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("after DeleteUpTo(2): %v", got)
	}
	if err := j.DeleteUpTo("a", 5); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, j, "a", 0); len(got) != 0 {
		t.Fatalf("after DeleteUpTo(5): %v", got)
	}
	// Numbers are not reused; a lower DeleteUpTo does not bring anything back.
	if last, err := j.Append("a", ev("g", 6)); err != nil || last != 6 {
		t.Fatalf("append after delete: %d, %v", last, err)
	}
	if err := j.DeleteUpTo("a", 1); err != nil {
		t.Fatal(err)
	}
	if got := seqs(replayAll(t, j, "a", 0)); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("after DeleteUpTo(1): %v", got)
	}
	// Deleting past the end moves the numbering on, as in Pebble.
	if err := j.DeleteUpTo("a", 9); err != nil {
		t.Fatal(err)
	}
	if last, err := j.Append("a", ev("g", 10)); err != nil || last != 10 {
		t.Fatalf("append after DeleteUpTo(9): %d, %v", last, err)
	}
	// The messages themselves are gone from the stream, but for the markers.
	info, err := j.stream.Info(testCtx(t), jetstream.WithSubjectFilter(journalSubject("a", "e")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[journalSubject("a", "e")]; n > 3 {
		t.Errorf("%d messages left on the events subject", n)
	}

	if err := j.DeleteActor("a"); err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, j, "a", 0); len(got) != 0 {
		t.Fatalf("after DeleteActor: %v", got)
	}
	if _, err := j.LoadSnapshot("a"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("snapshot after DeleteActor: %v", err)
	}
	if last, err := j.Append("a", ev("g", 1)); err != nil || last != 1 {
		t.Fatalf("append after DeleteActor: %d, %v", last, err)
	}
	// A new handle sees the same.
	if got := seqs(replayAll(t, openJournal(t, s), "a", 0)); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("new handle replays %v", got)
	}
}

// Two brokers claim the same journal: the first is fenced, never
// interleaved; the journal survives one broker's loss.
func TestJournalClusterFencingAndFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stores, _, _ := openCluster(t, ctx, 3)
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	}()
	js := make([]*StreamJournal, 3)
	for i, s := range stores {
		j, err := s.OpenJournal(ctx)
		if err != nil {
			t.Fatalf("journal %d: %v", i, err)
		}
		js[i] = j
	}
	if r := js[0].stream.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("journal replicas %d, want 3", r)
	}
	const actor = "__consumer_offsets-7"
	if err := js[0].Claim(ctx, actor); err != nil {
		t.Fatal(err)
	}
	if _, err := js[0].Append(actor, ev("g", 1), ev("g", 2)); err != nil {
		t.Fatal(err)
	}
	if err := js[1].Claim(ctx, actor); err != nil {
		t.Fatal(err)
	}
	// The new claimant sees everything before its claim.
	if got := seqs(replayAll(t, js[1], actor, 0)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("new coordinator replays %v", got)
	}
	if _, err := js[0].Append(actor, ev("g", 3)); !errors.Is(err, ErrJournalFenced) {
		t.Fatalf("deposed append: %v, want ErrJournalFenced", err)
	}
	if _, err := js[0].Append(actor, ev("g", 3)); !errors.Is(err, ErrJournalFenced) {
		t.Fatalf("second deposed append: %v, want ErrJournalFenced", err)
	}
	if err := js[0].DeleteUpTo(actor, 2); !errors.Is(err, ErrJournalFenced) {
		t.Fatalf("deposed delete: %v, want ErrJournalFenced", err)
	}
	if last, err := js[1].Append(actor, ev("g", 3)); err != nil || last != 3 {
		t.Fatalf("coordinator append: %d, %v", last, err)
	}

	// Lose the broker that leads the stream (the worst case: a new
	// leader must be elected before anything is written).
	info, err := js[1].stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := -1
	for i := range stores {
		if info.Cluster != nil && info.Cluster.Leader == fmt.Sprintf("fluxo-%d", i) {
			lost = i
		}
	}
	if lost < 0 {
		t.Fatalf("no stream leader in %+v", info.Cluster)
	}
	stores[lost].Close()
	stores[lost] = nil
	next := (lost + 1) % 3
	start := time.Now()
	for {
		err := js[next].Claim(ctx, actor)
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no claim with 2 of 3 brokers: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("claimed %v after losing the stream leader fluxo-%d", time.Since(start), lost)
	// Right after a stream leader change a replay's consumer can still time
	// out; coordinators retry the load (every 500 ms), and so does this.
	for time.Since(start) < 60*time.Second {
		if err := js[next].Replay(actor, 0, func(uint64, *fluxopb.JournalEvent) error { return nil }); err == nil {
			break
		} else {
			t.Logf("replay after failover: %v; retrying", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := seqs(replayAll(t, js[next], actor, 0)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("after failover replays %v", got)
	}
	if last, err := js[next].Append(actor, ev("g", 4)); err != nil || last != 4 {
		t.Fatalf("append after failover: %d, %v", last, err)
	}
	// js[1] held the claim before; if it survived it is now fenced.
	if stores[1] != nil && next != 1 {
		if _, err := js[1].Append(actor, ev("g", 5)); !errors.Is(err, ErrJournalFenced) {
			t.Fatalf("previous coordinator after failover: %v, want ErrJournalFenced", err)
		}
	}
}
