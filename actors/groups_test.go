package actors_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/actors/group"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit"
)

func join(t *testing.T, ctx context.Context, n *actors.Node, g, member string) *group.JoinResult {
	t.Helper()
	res, err := n.JoinGroup(ctx, g, &group.Join{Version: 3, MemberID: member, ClientID: "c", ProtocolType: "consumer",
		Protocols: []group.Protocol{{Name: "range"}}, SessionTimeout: 10 * time.Second, RebalanceTimeout: time.Second})
	if err != nil || res.Err != nil {
		t.Fatalf("join %s: %v %v", g, err, res)
	}
	return res
}

// A group's generation, assignment and committed offsets come back after a
// restart from the internal partition's journal; the coordinator answers
// across a crash of its actor with a retriable error and loses no commit.
func TestGroupSurvivesRestartAndCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	inj := &testkit.PanicInjector{}
	b := testkit.StartBrokerAt(t, dir, fluxo.WithActorMiddleware(inj.Middleware))
	if _, err := b.CreateTopic(ctx, "t", 2); err != nil {
		t.Fatal(err)
	}
	n := b.Node()
	jr := join(t, ctx, n, "g", "")
	sr, err := n.SyncGroup(ctx, "g", &group.Sync{MemberID: jr.MemberID, Generation: jr.Generation, Assignments: map[string][]byte{jr.MemberID: []byte("all")}})
	if err != nil || sr.Err != nil || string(sr.Assignment) != "all" {
		t.Fatalf("sync: %v %+v", err, sr)
	}
	commit := func(off int64) error {
		res, err := n.CommitOffsets(ctx, "g", &group.Commit{MemberID: jr.MemberID, Generation: jr.Generation,
			Offsets: []group.CommitOffset{{TopicPartition: group.TopicPartition{Topic: "t", Partition: 1}, Offset: off, LeaderEpoch: -1}}})
		if err != nil {
			return err
		}
		return res.Errs[0]
	}
	if err := commit(7); err != nil {
		t.Fatal(err)
	}

	// A panic in the group actor while it serves a commit.
	inj.Arm("/group-g", 1, testkit.MessageOf[any]())
	err = commit(8)
	if err == nil || actors.GroupErrorCode(err) != kerr.NotCoordinator.Code {
		t.Fatalf("commit into a panicking coordinator: %v, want NOT_COORDINATOR", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err = commit(9); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("commit after the restart: %v", err)
	}
	if lags, ok := n.GroupLag("g"); !ok || len(lags) != 1 || lags[0].Committed != 9 || lags[0].Lag != 0 {
		t.Fatalf("lag: %v %+v", ok, lags)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = testkit.StartBrokerAt(t, dir)
	n = b.Node()
	offs, err := n.CommittedOffsets(ctx, "g", nil)
	if err != nil || offs[group.TopicPartition{Topic: "t", Partition: 1}].Offset != 9 {
		t.Fatalf("offsets after restart: %v %v", offs, err)
	}
	d, err := n.DescribeGroup(ctx, "g")
	if err != nil || d.State != group.Stable || len(d.Members) != 1 || string(d.Members[0].Assignment) != "all" {
		t.Fatalf("group after restart: %v %+v", err, d)
	}
	// The member carries on in its generation.
	hb, err := n.Heartbeat(ctx, "g", &group.Heartbeat{MemberID: jr.MemberID, Generation: jr.Generation})
	if err != nil || hb.Err != nil {
		t.Fatalf("heartbeat after restart: %v %v", err, hb)
	}
	if gs := n.ListGroups(); len(gs) != 1 || gs[0].Group != "g" || gs[0].State != "Stable" {
		t.Fatalf("list: %+v", gs)
	}
	// An unknown group is Dead, with no offsets and no error.
	if d, err := n.DescribeGroup(ctx, "nope"); err != nil || d.State != group.Dead {
		t.Fatalf("unknown group: %v %v", d.State, err)
	}
	if offs, err := n.CommittedOffsets(ctx, "nope", nil); err != nil || len(offs) != 0 {
		t.Fatalf("unknown group offsets: %v %v", offs, err)
	}
}

func TestOffsetsPartitionMatchesKafka(t *testing.T) {
	// Values from Java: Math.abs("my-group".hashCode()) % 50 and friends.
	for _, c := range []struct {
		group string
		want  int32
	}{{"my-group", 12}, {"", 0}, {"g", 3}, {"console-consumer-12345", 6}, {"😀grp", 36}} {
		if got := actors.OffsetsPartition(c.group, 50); got != c.want {
			t.Errorf("%q: partition %d, want %d", c.group, got, c.want)
		}
	}
}

// Start-up compacts a long journal into one snapshot per group, and the
// groups come back the same from the snapshots.
func TestGroupJournalCompaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	b := testkit.StartBrokerAt(t, dir)
	if _, err := b.CreateTopic(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	n := b.Node()
	tp := group.TopicPartition{Topic: "t", Partition: 0}
	for i := 1; i <= 1100; i++ {
		res, err := n.CommitOffsets(ctx, "busy", &group.Commit{Generation: -1, Offsets: []group.CommitOffset{{TopicPartition: tp, Offset: int64(i), LeaderEpoch: -1}}})
		if err != nil || res.Errs[0] != nil {
			t.Fatalf("commit %d: %v %v", i, err, res)
		}
	}
	jr := join(t, ctx, n, "busy", "")
	if _, err := n.SyncGroup(ctx, "busy", &group.Sync{MemberID: jr.MemberID, Generation: jr.Generation, Assignments: map[string][]byte{jr.MemberID: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	before := n.JournalEvents("busy")
	if before < 1100 {
		t.Fatalf("journal holds %d events before compaction", before)
	}
	b.Close()

	for round := 0; round < 2; round++ { // compacted, then replayed from the snapshots
		b = testkit.StartBrokerAt(t, dir)
		n = b.Node()
		if got := n.JournalEvents("busy"); got > 5 {
			t.Fatalf("round %d: journal holds %d events after start-up, want the snapshots only", round, got)
		}
		offs, err := n.CommittedOffsets(ctx, "busy", nil)
		if err != nil || offs[tp].Offset != 1100 {
			t.Fatalf("round %d: offsets %v %v", round, offs, err)
		}
		d, err := n.DescribeGroup(ctx, "busy")
		if err != nil || d.State != group.Stable || len(d.Members) != 1 || string(d.Members[0].Assignment) != "a" {
			t.Fatalf("round %d: group %+v %v", round, d, err)
		}
		b.Close()
	}
}

// Group ids are free text: slashes and spaces must not confuse actor names.
func TestGroupIDsWithPathCharacters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testkit.StartBroker(t)
	if _, err := b.CreateTopic(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	n := b.Node()
	tp := group.TopicPartition{Topic: "t", Partition: 0}
	for i, id := range []string{"a/b", "a", "a b/../c", "%2F"} {
		res, err := n.CommitOffsets(ctx, id, &group.Commit{Generation: -1, Offsets: []group.CommitOffset{{TopicPartition: tp, Offset: int64(i), LeaderEpoch: -1}}})
		if err != nil || res.Errs[0] != nil {
			t.Fatalf("commit for %q: %v %v", id, err, res)
		}
	}
	for i, id := range []string{"a/b", "a", "a b/../c", "%2F"} {
		offs, err := n.CommittedOffsets(ctx, id, nil)
		if err != nil || offs[tp].Offset != int64(i) {
			t.Fatalf("group %q: %v %v", id, offs, err)
		}
	}
}

// Deleting a topic drops the groups' committed offsets for it; a delete by
// topic id names the incarnation it means.
func TestDeleteTopicForgetsOffsetsAndChecksID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testkit.StartBroker(t)
	n := b.Node()
	for _, topic := range []string{"gone", "kept"} {
		if _, err := b.CreateTopic(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	cm := &group.Commit{Generation: -1, Offsets: []group.CommitOffset{
		{TopicPartition: group.TopicPartition{Topic: "gone", Partition: 0}, Offset: 1, LeaderEpoch: -1},
		{TopicPartition: group.TopicPartition{Topic: "kept", Partition: 0}, Offset: 2, LeaderEpoch: -1}}}
	if res, err := n.CommitOffsets(ctx, "g", cm); err != nil || res.Errs[0] != nil {
		t.Fatalf("commit: %v %v", err, res)
	}
	res, err := n.DeleteTopic(ctx, &fluxopb.DeleteTopicRequest{Name: "gone", Id: []byte("0123456789abcdef")})
	if err != nil || res.ErrorCode != int32(kerr.UnknownTopicID.Code) || n.Topic("gone") == nil {
		t.Fatalf("delete with a stale id: %v %+v (topic still there: %v)", err, res, n.Topic("gone") != nil)
	}
	res, err = n.DeleteTopic(ctx, &fluxopb.DeleteTopicRequest{Name: "gone", Id: n.Topic("gone").Id})
	if err != nil || res.ErrorCode != 0 {
		t.Fatalf("delete: %v %+v", err, res)
	}
	offs, err := n.CommittedOffsets(ctx, "g", nil)
	if err != nil || len(offs) != 1 || offs[group.TopicPartition{Topic: "kept", Partition: 0}].Offset != 2 {
		t.Fatalf("offsets after deleting a topic: %v %v", offs, err)
	}
}

// Requests queued at a group's coordinator when the broker stops are
// answered (NOT_COORDINATOR, or dead letters once the actors are gone), not
// left to time out: the actor is stopped by a system message, which skips
// the user messages still in its mailbox.
func TestGroupRequestsAnsweredWhenBrokerStops(t *testing.T) {
	ctx := context.Background()
	b := testkit.StartBroker(t, fluxo.WithNodeConfig(func(c *actors.Config) { c.RequestTimeout = time.Minute }))
	n := b.Node()
	jr := join(t, ctx, n, "g", "")
	if sr, err := n.SyncGroup(ctx, "g", &group.Sync{MemberID: jr.MemberID, Generation: jr.Generation}); err != nil || sr.Err != nil {
		t.Fatalf("sync: %v %+v", err, sr)
	}
	const callers = 8
	var running sync.WaitGroup
	done := make(chan struct{})
	for range callers {
		running.Add(1)
		go func() {
			defer running.Done()
			for {
				res, err := n.Heartbeat(ctx, "g", &group.Heartbeat{MemberID: jr.MemberID, Generation: jr.Generation})
				if err != nil {
					if c := actors.GroupErrorCode(err); c != kerr.NotCoordinator.Code && c != kerr.CoordinatorNotAvailable.Code {
						t.Errorf("heartbeat while the broker stops: %v, want a retriable error", err)
					}
					return
				}
				if res.Err != nil {
					t.Errorf("heartbeat: %v", res.Err)
					return
				}
			}
		}()
	}
	go func() { running.Wait(); close(done) }()
	time.Sleep(20 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("group requests in flight when the broker stopped were not answered within 5s")
	}
}
