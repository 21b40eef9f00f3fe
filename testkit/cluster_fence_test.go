package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/testkit"
)

// TestClusterIsolatedLeaderFencesItself: a leader cut off from the others
// stops serving as leader once it no longer hears a majority, and a client
// that knows only that broker still finds the new leader through it. Before
// the fence, the zombie answered Metadata with itself as the only broker and
// as the leader, so such a client retried against it for as long as the
// isolation lasted (an idempotent send cannot be abandoned).
func TestClusterIsolatedLeaderFencesItself(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic = "fence"
	adm := kadm.NewClient(mustClient(t, kgo.SeedBrokers(c.Addrs()...)))
	if res, err := adm.CreateTopic(ctx, 1, 3, nil, topic); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	l, err := c.WaitLeader(topic, 0, -1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	zombie := int(l)
	// The client's only seed is the broker about to be cut off.
	zc := mustClient(t, kgo.SeedBrokers(c.Addrs()[zombie]), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(v string) int64 {
		t.Helper()
		done := make(chan struct{})
		var (
			off  int64
			perr error
		)
		zc.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}, func(r *kgo.Record, err error) {
			off, perr = r.Offset, err
			close(done)
		})
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("produce %s: no answer after 30s (the client is stuck on broker %d)", v, zombie)
		}
		if perr != nil {
			t.Fatalf("produce %s: %v", v, perr)
		}
		return off
	}
	if off := produce("a"); off != 0 {
		t.Fatalf("a at offset %d, want 0", off)
	}

	c.Isolate(zombie)
	isolated := time.Now()
	for !c.Broker(zombie).Node().Fenced() {
		if time.Since(isolated) > 10*time.Second {
			t.Fatalf("broker %d isolated for 10s and not fenced", zombie)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("broker %d fenced %v after its isolation", zombie, time.Since(isolated).Round(time.Millisecond))

	// Fenced, it refuses to answer as leader: no stale end offsets.
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	raw, err := zc.Broker(zombie).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if code := raw.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("ListOffsets on the fenced broker: error %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}

	// The client finds the new leader although it was seeded with the zombie only.
	if off := produce("b"); off != 1 {
		t.Fatalf("b at offset %d, want 1", off)
	}
	// As the majority records it (the zombie's own view is stale).
	if ld, _ := c.Broker((zombie+1)%3).Node().PartitionLeadership(topic, 0); ld.Leader == l || ld.Leader < 0 {
		t.Fatalf("after the isolation the majority records %+v", ld)
	}
	t.Logf("the client followed the new leader %v after the isolation", time.Since(isolated).Round(time.Millisecond))

	// Healed, it re-reads the partition states, follows the new leader and
	// serves again.
	c.Heal(zombie)
	healed := time.Now()
	for {
		st, _ := c.Broker(zombie).Node().Partition(topic, 0)
		if !c.Broker(zombie).Node().Fenced() && !st.Leader && st.LogEndOffset == 2 {
			break
		}
		if time.Since(healed) > 20*time.Second {
			t.Fatalf("broker %d healed 20s ago: fenced %v, partition %+v", zombie, c.Broker(zombie).Node().Fenced(), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cons := mustClient(t, kgo.SeedBrokers(c.Addrs()[zombie]),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var got []string
	for len(got) < 2 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("read back %q, want [a b]", got)
	}
}

func mustClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A client stuck on an idempotent send may not close promptly;
		// the test has failed already then.
		done := make(chan struct{})
		go func() { cl.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	return cl
}
