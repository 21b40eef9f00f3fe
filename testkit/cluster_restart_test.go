package testkit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/testkit"
)

// TestClusterLeaderRestartBumpsEpoch: a leader that crashes (losing its
// unsynced writes) and is back before the others notice must not lead on in
// its old epoch, where followers holding records it lost would not find the
// divergence; it reclaims the leadership in a new epoch. The liveness window
// is long here so no election hides the restart. Every acknowledged record
// is read back afterwards, each offset holding one value.
func TestClusterLeaderRestartBumpsEpoch(t *testing.T) {
	c := testkit.StartClusterWith(t, 3, testkit.ClusterOptions{CrashableDisks: true}, fluxo.WithNodeConfig(func(cfg *actors.Config) {
		cfg.LivenessWindow = 10 * time.Second
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("restart"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "restart"); err != nil {
		t.Fatal(err)
	}
	l, err := c.WaitLeader("restart", 0, -1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[int64]string{}
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf("v%d", i)
			r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).First()
			if err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			if old, dup := acked[r.Offset]; dup {
				t.Fatalf("offset %d acknowledged for %q and %q", r.Offset, old, v)
			}
			acked[r.Offset] = v
		}
	}
	produce(0, 50)
	before := leadership(t, c, "restart", 0)

	c.Crash(int(l))
	c.Restart(int(l))
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, ok := c.Broker(int(l)).Node().PartitionLeadership("restart", 0)
		if ok && now.LeaderEpoch > before.LeaderEpoch && now.Leader >= 0 {
			t.Logf("broker %d led in epoch %d before its crash; after the restart broker %d leads in epoch %d", l, before.LeaderEpoch, now.Leader, now.LeaderEpoch)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after broker %d's restart the partition is still %+v (was %+v): the old epoch was not bumped", l, now, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	produce(50, 50)

	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("restart"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[int64]string{}
	for len(seen) < len(acked) {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d acknowledged records", len(seen), len(acked))
		}
		fs.EachRecord(func(r *kgo.Record) { seen[r.Offset] = string(r.Value) })
	}
	for off, v := range acked {
		if seen[off] != v {
			t.Fatalf("offset %d: acknowledged %q, read %q", off, v, seen[off])
		}
	}
}
