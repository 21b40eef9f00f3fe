package testkit_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/testkit"
)

// TestClusterOperations covers the operator's side of a cluster: a topic
// with more replicas than live brokers is refused, a controlled shutdown
// moves leadership before the broker exits, the preferred leader takes its
// partitions back when it returns, and a fourth broker joins a running
// cluster and gets replicas of new topics.
func TestClusterOperations(t *testing.T) {
	c := testkit.StartCluster(t, 3, fluxo.WithNodeConfig(func(cfg *actors.Config) {
		cfg.PreferredLeaderDelay = 500 * time.Millisecond
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// Replication factor above the live brokers: INVALID_REPLICATION_FACTOR.
	res, _ := adm.CreateTopic(ctx, 1, 4, nil, "too-many")
	if !errors.Is(res.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("RF 4 on 3 brokers: %v (%s), want INVALID_REPLICATION_FACTOR", res.Err, res.ErrMessage)
	}
	t.Logf("RF 4 on 3 brokers: %v: %s", res.Err, res.ErrMessage)
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader("ops", 0, -1, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// Controlled shutdown: leadership has moved by the time Stop returns.
	l := c.Leader("ops", 0)
	start := time.Now()
	c.Stop(int(l))
	stopped := time.Since(start)
	nl, err := c.WaitLeader("ops", 0, l, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("controlled shutdown of broker %d took %v; broker %d leads, %v after the stop returned", l, stopped.Round(time.Millisecond), nl, (time.Since(start) - stopped).Round(time.Millisecond))

	// Preferred leader: back once the returning broker is alive and in sync.
	c.Restart(int(l))
	c.WaitAlive(3, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pref := leadership(t, c, "ops", 0).Replicas[0]
		if cur := c.Leader("ops", 0); cur == pref {
			t.Logf("partition 0 led by its preferred replica %d again", pref)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition 0: preferred replica %d not leading after 30 s: %+v", pref, leadership(t, c, "ops", 0))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A fourth broker joins; a new topic with 4 partitions and RF 3 places
	// replicas on it.
	id := c.AddBroker()
	c.WaitAlive(4, 30*time.Second)
	if _, err := adm.CreateTopic(ctx, 4, 3, nil, "four"); err != nil {
		t.Fatal(err)
	}
	on := 0
	for p := range int32(4) {
		if slices.Contains(leadership(t, c, "four", p).Replicas, int32(id)) {
			on++
		}
	}
	if on != 3 {
		t.Fatalf("broker %d holds %d of 4 partitions' replicas, want 3 (RF 3 spread over 4 brokers)", id, on)
	}
	pr := cl.ProduceSync(ctx, &kgo.Record{Topic: "four", Value: []byte("x")})
	if err := pr.FirstErr(); err != nil {
		t.Fatal(err)
	}

	// min.insync.replicas 3 on RF 3: losing a follower refuses acks=all
	// with NOT_ENOUGH_REPLICAS, before appending.
	three := "3"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &three}, "strict"); err != nil {
		t.Fatal(err)
	}
	strict, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if err := strict.ProduceSync(ctx, &kgo.Record{Topic: "strict", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatalf("strict topic with 3 in sync: %v", err)
	}
	ls := leadership(t, c, "strict", 0)
	follower := ls.Replicas[0]
	if follower == ls.Leader {
		follower = ls.Replicas[1]
	}
	c.Kill(int(follower))
	for len(leadership(t, c, "strict", 0).ISR) != 2 {
		if ctx.Err() != nil {
			t.Fatal("the dead follower never left the in-sync set")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		err := strict.ProduceSync(ctx, &kgo.Record{Topic: "strict", Value: []byte("refused")}).FirstErr()
		if errors.Is(err, kerr.NotEnoughReplicas) {
			t.Logf("acks=all with 2 of 3 in sync: %v", err)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("want NOT_ENOUGH_REPLICAS, last %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the leader may not have applied the new ISR yet
	}
}

func leadership(t *testing.T, c *testkit.Cluster, topic string, p int32) actors.Leadership {
	t.Helper()
	for i := range c.Size() {
		if b := c.Broker(i); b != nil {
			if l, ok := b.Node().PartitionLeadership(topic, p); ok {
				return l
			}
		}
	}
	t.Fatalf("%s-%d: no broker knows its leadership", topic, p)
	return actors.Leadership{}
}
