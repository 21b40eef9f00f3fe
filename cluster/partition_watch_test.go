package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// A leader's own changes (AlterISR, BumpLeaderEpoch) apply only while the
// store still names it leader in the epoch it asks for.
func TestLeaderStateChangesAreFenced(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	st := &fluxopb.PartitionState{Leader: 1, LeaderEpoch: 4, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 2, 3}}
	v, err := marshalOpts.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.create(ctx, partitionKey("t", 0), v); err != nil {
		t.Fatal(err)
	}

	got, err := s.AlterISR(ctx, "t", 0, 1, 4, []int32{3})
	if err != nil {
		t.Fatalf("AlterISR by the leader: %v", err)
	}
	if !slices.Equal(got.Isr, []int32{1, 3}) || got.LeaderEpoch != 4 {
		t.Fatalf("AlterISR wrote %v, want isr [1 3] at epoch 4 (the leader stays in)", got)
	}

	if _, err := s.BumpLeaderEpoch(ctx, "t", 0, 2, 4); !errors.Is(err, ErrStaleLeader) {
		t.Fatalf("BumpLeaderEpoch by a non-leader: %v, want ErrStaleLeader", err)
	}
	if _, err := s.BumpLeaderEpoch(ctx, "t", 0, 1, 3); !errors.Is(err, ErrStaleLeader) {
		t.Fatalf("BumpLeaderEpoch for an old epoch: %v, want ErrStaleLeader", err)
	}
	got, err = s.BumpLeaderEpoch(ctx, "t", 0, 1, 4)
	if err != nil {
		t.Fatalf("BumpLeaderEpoch by the leader: %v", err)
	}
	if got.Leader != 1 || got.LeaderEpoch != 5 || !slices.Equal(got.Isr, []int32{1, 3}) {
		t.Fatalf("BumpLeaderEpoch wrote %v, want leader 1 epoch 5 isr [1 3]", got)
	}
	stored, _, err := s.GetPartition(ctx, "t", 0)
	if err != nil || stored.LeaderEpoch != 5 {
		t.Fatalf("stored state %v (%v), want epoch 5", stored, err)
	}
	if _, err := s.AlterISR(ctx, "t", 0, 1, 4, []int32{1, 2, 3}); !errors.Is(err, ErrStaleLeader) {
		t.Fatalf("AlterISR in the epoch before the bump: %v, want ErrStaleLeader", err)
	}
}
