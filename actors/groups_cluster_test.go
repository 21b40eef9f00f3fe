package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/cluster"
)

const clusterOffsetsPartitions = 4

// startFollowing starts a node that coordinates only the offsets partitions
// it is told to, with its own handle on the store's journal stream (as
// another broker would have).
func startFollowing(t *testing.T, ctx context.Context, store *cluster.Store) *actors.Node {
	t.Helper()
	j, err := store.OpenJournal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := actors.Start(ctx, actors.Config{DataDir: t.TempDir(), Metadata: store, GroupJournal: j,
		GroupsFollowLeadership: true, OffsetsPartitions: clusterOffsetsPartitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

func openClusterStore(t *testing.T, ctx context.Context) *cluster.Store {
	t.Helper()
	s, err := cluster.Open(ctx, cluster.Options{DataDir: t.TempDir(), NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lead makes n coordinator of every offsets partition and waits for it.
func lead(t *testing.T, n *actors.Node) {
	t.Helper()
	for p := range int32(clusterOffsetsPartitions) {
		n.SetOffsetsCoordinator(p, true)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p := range int32(clusterOffsetsPartitions) {
		for !n.OwnsOffsetsPartition(p) {
			if time.Now().After(deadline) {
				t.Fatalf("partition %d not loaded", p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func isNotCoordinator(err error) bool {
	return err != nil && actors.GroupErrorCode(err) == kerr.NotCoordinator.Code
}

type member struct {
	id  string
	gen int32
}

func joinAndSync(t *testing.T, ctx context.Context, n *actors.Node, g string) member {
	t.Helper()
	jr := join(t, ctx, n, g, "")
	sr, err := n.SyncGroup(ctx, g, &group.Sync{MemberID: jr.MemberID, Generation: jr.Generation, Assignments: map[string][]byte{jr.MemberID: []byte("all")}})
	if err != nil || sr.Err != nil {
		t.Fatalf("sync: %v %+v", err, sr)
	}
	return member{jr.MemberID, jr.Generation}
}

var tp1 = group.TopicPartition{Topic: "t", Partition: 1}

func commitAt(ctx context.Context, n *actors.Node, g string, m member, off int64) error {
	res, err := n.CommitOffsets(ctx, g, &group.Commit{MemberID: m.id, Generation: m.gen,
		Offsets: []group.CommitOffset{{TopicPartition: tp1, Offset: off, LeaderEpoch: -1}}})
	if err != nil {
		return err
	}
	return res.Errs[0]
}

func committed(t *testing.T, ctx context.Context, n *actors.Node, g string) int64 {
	t.Helper()
	offs, err := n.CommittedOffsets(ctx, g, nil)
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	o, ok := offs[tp1]
	if !ok {
		return -1
	}
	return o.Offset
}

// A group and its committed offsets move from one coordinator to the next
// through the replicated journal; before it is told to lead, a node answers
// NOT_COORDINATOR.
func TestGroupsClusterHandover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := openClusterStore(t, ctx)
	a := startFollowing(t, ctx, store)

	if _, err := a.JoinGroup(ctx, "g", &group.Join{Version: 3, ClientID: "c", ProtocolType: "consumer",
		Protocols: []group.Protocol{{Name: "range"}}, SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Second}); !isNotCoordinator(err) {
		t.Fatalf("join before leading: %v, want NOT_COORDINATOR", err)
	}
	if _, err := a.CommittedOffsets(ctx, "g", nil); !isNotCoordinator(err) {
		t.Fatalf("offset fetch before leading: %v, want NOT_COORDINATOR", err)
	}
	if _, err := a.DescribeGroup(ctx, "g"); !isNotCoordinator(err) {
		t.Fatalf("describe before leading: %v, want NOT_COORDINATOR", err)
	}
	p := actors.OffsetsPartition("g", clusterOffsetsPartitions)
	if a.OwnsOffsetsPartition(p) {
		t.Fatal("owns a partition it was not told to lead")
	}

	lead(t, a)
	m := joinAndSync(t, ctx, a, "g")
	if err := commitAt(ctx, a, "g", m, 7); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	b := startFollowing(t, ctx, store)
	if _, err := b.CommittedOffsets(ctx, "g", nil); !isNotCoordinator(err) {
		t.Fatalf("offset fetch before leading: %v, want NOT_COORDINATOR", err)
	}
	lead(t, b)
	if got := committed(t, ctx, b, "g"); got != 7 {
		t.Fatalf("new coordinator has offset %d, want 7", got)
	}
	d, err := b.DescribeGroup(ctx, "g")
	if err != nil || d.State != group.Stable || len(d.Members) != 1 {
		t.Fatalf("new coordinator describes %+v, %v", d, err)
	}
	if s := b.ListGroupSummary("g"); s == nil || s.Offsets[tp1].Offset != 7 {
		t.Fatalf("summary %+v", s)
	}
	// The member carries on in its generation.
	if err := commitAt(ctx, b, "g", m, 8); err != nil {
		t.Fatal(err)
	}

	// Told to stop leading, it forgets the group and sends clients away.
	b.SetOffsetsCoordinator(p, false)
	deadline := time.Now().Add(10 * time.Second)
	for b.OwnsOffsetsPartition(p) {
		if time.Now().After(deadline) {
			t.Fatal("partition still owned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := commitAt(ctx, b, "g", m, 9); !isNotCoordinator(err) {
		t.Fatalf("commit after unloading: %v, want NOT_COORDINATOR", err)
	}
	if s := b.ListGroupSummary("g"); s != nil {
		t.Fatalf("unloaded group still listed: %+v", s)
	}
	// And back: the commit of 8 is there.
	b.SetOffsetsCoordinator(p, true)
	lead(t, b)
	if got := committed(t, ctx, b, "g"); got != 8 {
		t.Fatalf("reloaded offset %d, want 8", got)
	}
}

// A coordinator that is not told it lost its partitions is fenced by its
// successor's claim: its next write answers NOT_COORDINATOR, it stops
// owning the partition and does not claim it back.
func TestGroupsClusterFencing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := openClusterStore(t, ctx)
	a := startFollowing(t, ctx, store)
	lead(t, a)
	m := joinAndSync(t, ctx, a, "g")
	if err := commitAt(ctx, a, "g", m, 7); err != nil {
		t.Fatal(err)
	}

	b := startFollowing(t, ctx, store)
	lead(t, b)
	if err := commitAt(ctx, a, "g", m, 100); !isNotCoordinator(err) {
		t.Fatalf("deposed coordinator's commit: %v, want NOT_COORDINATOR", err)
	}
	p := actors.OffsetsPartition("g", clusterOffsetsPartitions)
	deadline := time.Now().Add(10 * time.Second)
	for a.OwnsOffsetsPartition(p) {
		if time.Now().After(deadline) {
			t.Fatal("deposed coordinator still owns the partition")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := commitAt(ctx, a, "g", m, 101); !isNotCoordinator(err) {
		t.Fatalf("deposed coordinator's second commit: %v, want NOT_COORDINATOR", err)
	}
	if got := committed(t, ctx, b, "g"); got != 7 {
		t.Fatalf("new coordinator has offset %d, want 7", got)
	}
	// The deposed node did not take the journal back: b still writes.
	if err := commitAt(ctx, b, "g", m, 8); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, ctx, b, "g"); got != 8 {
		t.Fatalf("offset %d, want 8", got)
	}
	// Told to lead again, a claims and sees b's commit.
	lead(t, a)
	if got := committed(t, ctx, a, "g"); got != 8 {
		t.Fatalf("reclaimed offset %d, want 8", got)
	}
	if err := commitAt(ctx, b, "g", m, 9); !isNotCoordinator(err) {
		t.Fatalf("b after a claimed back: %v, want NOT_COORDINATOR", err)
	}
}
