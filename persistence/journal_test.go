package persistence

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func TestJournal(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, 0)
	j := s.Journal()
	ev := func(n int64) proto.Message { return &fluxopb.LogTruncated{EndOffset: n} }
	if seq, err := j.Append("g1", ev(1), ev(2)); err != nil || seq != 2 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if seq, err := j.Append("g1", ev(3)); err != nil || seq != 3 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if seq, _ := j.Append("g10", ev(9)); seq != 1 {
		t.Fatalf("other actor seq %d", seq)
	}
	if _, err := j.LoadSnapshot("g1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no snapshot: %v", err)
	}
	if err := j.SaveSnapshot("g1", 2, &fluxopb.LogStartAdvanced{LogStartOffset: 7}); err != nil {
		t.Fatal(err)
	}
	// Synced writes survive a crash.
	fs = crash(t, fs, s)
	s = openMem(t, fs, 0)
	defer s.Close()
	j = s.Journal()
	snap, err := j.LoadSnapshot("g1")
	if err != nil || snap.Sequence != 2 || snap.TypeUrl != "type.googleapis.com/fluxo.v1.LogStartAdvanced" {
		t.Fatalf("snapshot %v %v", snap, err)
	}
	var seqs []uint64
	err = j.Replay("g1", snap.Sequence, func(seq uint64, e *fluxopb.JournalEvent) error {
		m := &fluxopb.LogTruncated{}
		if err := proto.Unmarshal(e.Payload, m); err != nil {
			return err
		}
		if m.EndOffset != int64(seq) || e.TypeUrl != "type.googleapis.com/fluxo.v1.LogTruncated" {
			t.Fatalf("event %d: %v", seq, e)
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil || len(seqs) != 1 || seqs[0] != 3 {
		t.Fatalf("replay after 2: %v %v", seqs, err)
	}
	// DeleteUpTo past the end keeps numbering going.
	if err := j.DeleteUpTo("g1", 3); err != nil {
		t.Fatal(err)
	}
	n := 0
	j.Replay("g1", 0, func(uint64, *fluxopb.JournalEvent) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d events after delete", n)
	}
	if seq, _ := j.Append("g1", ev(4)); seq != 4 {
		t.Fatalf("seq after delete %d, want 4", seq)
	}
	stop := errors.New("stop")
	if err := j.Replay("g10", 0, func(uint64, *fluxopb.JournalEvent) error { return stop }); err != stop {
		t.Fatalf("replay error not returned: %v", err)
	}
	if err := j.DeleteActor("g1"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.LoadSnapshot("g1"); !errors.Is(err, ErrNotFound) {
		t.Fatal("snapshot survived DeleteActor")
	}
	if seq, _ := j.Append("g1", ev(1)); seq != 1 {
		t.Fatalf("seq after DeleteActor %d", seq)
	}
}
