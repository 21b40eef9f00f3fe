package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// broker is one test broker's coordination side.
type broker struct {
	s    *Store
	hb   *Heartbeater
	live *Liveness
	ctl  *Controller
}

func startBroker(t *testing.T, s *Store, id int32) *broker {
	t.Helper()
	live, err := s.NewLiveness(LivenessConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{s: s, hb: s.StartHeartbeat(id, 0), live: live}
	if b.ctl, err = s.StartController(ControllerConfig{NodeID: id, Liveness: live}); err != nil {
		t.Fatal(err)
	}
	return b
}

// kill stops everything the broker runs and closes its store.
func (b *broker) kill() {
	b.ctl.Stop()
	b.hb.Stop()
	b.live.Close()
	b.s.Close()
}

// activeControllers returns the indexes of brokers that think they are the
// controller, and the highest epoch among them.
func activeControllers(bs []*broker) ([]int, int64) {
	var act []int
	var top int64
	for i, b := range bs {
		if b == nil {
			continue
		}
		if e, ok := b.ctl.Epoch(); ok {
			act = append(act, i)
			top = max(top, e)
		}
	}
	return act, top
}

func waitOneController(t *testing.T, bs []*broker, above int64, within time.Duration) (int, int64) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		act, e := activeControllers(bs)
		if len(act) == 1 && e > above {
			return act[0], e
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: controllers %v (epoch %d), want exactly one above epoch %d", within, act, e, above)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retry runs f until it succeeds or the deadline passes (writes fail for
// several seconds while the bucket's stream elects a new leader).
func retry(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Three brokers elect exactly one controller; it places and writes partition
// state; a broker that stops heartbeating is reported dead within about 2 s
// and alive when it resumes; when the controller's store is closed another
// broker takes over with a higher epoch, elects new leaders from the ISR
// with a fenced write, and a write with the deposed controller's epoch and
// revision is rejected.
func TestControllerFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	stores, _, _ := openCluster(t, ctx, 3)
	bs := make([]*broker, 3)
	for i, s := range stores {
		bs[i] = startBroker(t, s, int32(i))
	}
	defer func() {
		for _, b := range bs {
			if b != nil {
				b.kill()
			}
		}
	}()

	ci, epoch := waitOneController(t, bs, 0, 15*time.Second)
	time.Sleep(time.Second) // stays exactly one
	if act, e := activeControllers(bs); len(act) != 1 || act[0] != ci || e != epoch {
		t.Fatalf("controllers %v epoch %d, want [%d] epoch %d", act, e, ci, epoch)
	}
	for i, s := range stores {
		id, e, ok, err := s.CurrentController(ctx)
		if err != nil || !ok || id != int32(ci) || e != epoch {
			t.Fatalf("store %d reads controller %d epoch %d (%v %v), want %d epoch %d", i, id, e, ok, err, ci, epoch)
		}
	}
	t.Logf("controller: broker %d, epoch %d", ci, epoch)

	// The controller places a 3-partition topic, replication factor 3.
	place, err := PlaceReplicas([]int32{0, 1, 2}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ws []PartitionWrite
	for p, rs := range place {
		ws = append(ws, PartitionWrite{Topic: "orders", Partition: int32(p), State: NewPartitionState(rs)})
	}
	retry(t, 15*time.Second, "initial partition write", func() error {
		_, err := bs[ci].ctl.WritePartitions(ctx, ws)
		return err
	})
	ctrlRev := bs[ci].ctl.rev

	// A non-controller broker stops heartbeating, then resumes.
	quiet := (ci + 1) % 3
	watcher := bs[(ci+2)%3].live
	drain(watcher)
	bs[quiet].hb.Stop()
	took := waitLiveness(t, watcher, LivenessChange{int32(quiet), false}, 5*time.Second)
	t.Logf("silent broker %d reported dead after %s", quiet, took)
	if took > DefaultLivenessWindow+500*time.Millisecond {
		t.Fatalf("dead after %s, want about %s", took, DefaultLivenessWindow)
	}
	bs[quiet].hb = stores[quiet].StartHeartbeat(int32(quiet), 0)
	took = waitLiveness(t, watcher, LivenessChange{int32(quiet), true}, 2*time.Second)
	t.Logf("broker %d alive again %s after resuming", quiet, took)
	if act, e := activeControllers(bs); len(act) != 1 || act[0] != ci || e != epoch {
		t.Fatalf("controller changed while a follower was silent: %v epoch %d", act, e)
	}

	// The controller dies. If it also leads the bucket's stream, writes
	// (and leader reads) stall until the stream elects a new leader.
	streamLeader := "?"
	if si, err := stores[0].js.Stream(ctx, bucketStream); err == nil && si.CachedInfo().Cluster != nil {
		streamLeader = si.CachedInfo().Cluster.Leader
	}
	t.Logf("bucket stream leader: %s", streamLeader)
	start := time.Now()
	bs[ci].kill()
	bs[ci], stores[ci] = nil, nil
	ni, nepoch := waitOneController(t, bs, epoch, 30*time.Second)
	failover := time.Since(start)
	t.Logf("controller failover: broker %d -> %d, epoch %d -> %d, in %s", ci, ni, epoch, nepoch, failover)

	// The new controller moves leadership off the dead broker, from the
	// ISR only, bumping leader epochs; the write is fenced by its epoch.
	nc := bs[ni].ctl
	retry(t, 20*time.Second, "re-election write", func() error {
		var ws []PartitionWrite
		for p := range int32(3) {
			st, rev, err := stores[ni].GetPartition(ctx, "orders", p)
			if err != nil {
				return err
			}
			if next, changed := ElectLeader(st, bs[ni].live.Alive, false); changed {
				ws = append(ws, PartitionWrite{Topic: "orders", Partition: p, State: next, Rev: rev})
			}
		}
		if len(ws) == 0 {
			return nil
		}
		_, err := nc.WritePartitions(ctx, ws)
		return err
	})
	t.Logf("leaders re-elected %s after the controller died", time.Since(start))
	other := 3 - ci - ni
	for p := range int32(3) {
		st, _, err := stores[other].GetPartition(ctx, "orders", p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == int32(ci) || st.Leader == NoLeader || st.ControllerEpoch < nepoch && st.LeaderEpoch > 0 {
			t.Fatalf("partition %d after failover: %v", p, st)
		}
		if place[p][0] == int32(ci) && (st.LeaderEpoch != 1 || st.ControllerEpoch != nepoch) {
			t.Fatalf("partition %d led by the dead broker: %v, want leader epoch 1 by controller epoch %d", p, st, nepoch)
		}
	}

	// A deposed controller (the old epoch at the revision it held) cannot
	// write partition state, and nothing of its batch is applied.
	before, rev, err := stores[other].GetPartition(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	stale := &fluxopb.PartitionState{Replicas: []int32{0, 1, 2}, Isr: []int32{int32(ci)}, Leader: int32(ci), LeaderEpoch: 99}
	_, err = stores[other].fencedWrite(ctx, int32(ci), epoch, ctrlRev, []PartitionWrite{{Topic: "orders", Partition: 0, State: stale, Rev: rev}})
	if !errors.Is(err, ErrNotController) {
		t.Fatalf("deposed controller's write: %v, want ErrNotController", err)
	}
	after, _, err := stores[other].GetPartition(ctx, "orders", 0)
	if err != nil || after.String() != before.String() {
		t.Fatalf("partition 0 changed by a rejected write: %v -> %v (%v)", before, after, err)
	}
}

func drain(l *Liveness) {
	for {
		select {
		case <-l.Changes():
		default:
			return
		}
	}
}

func waitLiveness(t *testing.T, l *Liveness, want LivenessChange, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		select {
		case c := <-l.Changes():
			if c == want {
				return time.Since(start)
			}
		case <-deadline:
			t.Fatalf("no %+v within %s (alive %v)", want, within, l.AliveSet())
		}
	}
}
