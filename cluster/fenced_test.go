package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Fenced writes on one store: a write is applied only with the controller
// key at the writer's epoch and revision and every partition at its expected
// revision, all or nothing; a stale partition revision is ErrConflict, a
// moved controller key ErrNotController, and the deposed Controller notices.
func TestFencedWrites(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, t.TempDir())
	b := startBroker(t, s, 1)
	defer func() { b.ctl.Stop(); b.hb.Stop(); b.live.Close() }()
	hb2 := s.StartHeartbeat(2, 0) // a live contender that never runs an election
	defer hb2.Stop()
	var epoch int64
	select {
	case ev := <-b.ctl.Events():
		if !ev.Active || ev.Epoch != 1 {
			t.Fatalf("first event %+v, want active epoch 1", ev)
		}
		epoch = ev.Epoch
	case <-time.After(5 * time.Second):
		t.Fatal("single broker did not become controller")
	}

	st := NewPartitionState([]int32{1, 2})
	revs, err := b.ctl.WritePartitions(ctx, []PartitionWrite{
		{Topic: "t", Partition: 0, State: st},
		{Topic: "t", Partition: 1, State: st},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, rev0, err := s.GetPartition(ctx, "t", 0)
	if err != nil || rev0 != revs[0] || got.ControllerEpoch != epoch || got.Leader != 1 {
		t.Fatalf("partition 0: %v rev %d (%v), want rev %d controller epoch %d", got, rev0, err, revs[0], epoch)
	}

	// Partition 1 at a stale revision: nothing applied, not even partition 0.
	next := NewPartitionState([]int32{2, 1})
	_, err = b.ctl.WritePartitions(ctx, []PartitionWrite{
		{Topic: "t", Partition: 0, State: next, Rev: revs[0]},
		{Topic: "t", Partition: 1, State: next, Rev: revs[1] - 1},
	})
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrNotController) {
		t.Fatalf("stale partition revision: %v, want ErrConflict", err)
	}
	if got, rev, _ := s.GetPartition(ctx, "t", 0); rev != revs[0] || got.Leader != 1 {
		t.Fatalf("partition 0 written by a failed batch: %v rev %d", got, rev)
	}
	if _, ok := b.ctl.Epoch(); !ok {
		t.Fatal("a partition conflict deposed the controller")
	}

	// Broker 2 takes the controller key (as if it had decided broker 1 is
	// dead); broker 1's writes are then refused by the fence.
	rec, crev, err := s.readController(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := marshalOpts.Marshal(&fluxopb.ControllerRecord{NodeId: 2, Epoch: rec.Epoch + 1})
	if _, err := s.update(ctx, controllerKey, v, crev); err != nil {
		t.Fatal(err)
	}
	_, err = s.fencedWrite(ctx, 1, epoch, crev, []PartitionWrite{{Topic: "t", Partition: 0, State: next, Rev: revs[0]}})
	if !errors.Is(err, ErrNotController) {
		t.Fatalf("write at the deposed epoch and revision: %v, want ErrNotController", err)
	}
	_, err = b.ctl.WritePartitions(ctx, []PartitionWrite{{Topic: "t", Partition: 0, State: next, Rev: revs[0]}})
	if !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed controller's write: %v, want ErrNotController", err)
	}
	if got, rev, _ := s.GetPartition(ctx, "t", 0); rev != revs[0] || got.Leader != 1 {
		t.Fatalf("partition 0 written by a deposed controller: %v rev %d", got, rev)
	}
	select {
	case ev := <-b.ctl.Events():
		if ev.Active {
			t.Fatalf("event %+v, want lost", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("deposed controller did not report the loss")
	}
}
