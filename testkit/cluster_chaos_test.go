package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo/testkit"
	"github.com/fluxo-broker/fluxo/testkit/history"
)

// TestClusterFaultsLoseNothing runs idempotent acks=all producers and a
// consumer against a 3-broker cluster through the faults of the cluster
// issue, one after another: kill the leader, isolate the leader (a zombie
// that still takes client requests), kill two brokers one after the other
// (the second leaves a minority, which must stop acknowledging), pause the
// leader's partition actor, restart all. After healing, a fresh consumer drains every partition and
// the history checker must find nothing: no acknowledged record lost, no
// offset with two values, no duplicate. Each fault that leaves a majority
// must leave a new leader serving within 5 s.
func TestClusterFaultsLoseNothing(t *testing.T) {
	const topic, partitions = "chaos", 2
	c := testkit.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, partitions, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	admCl.Close()

	w := &testkit.Workload{Topic: topic, Partitions: partitions, Seeds: c.Addrs, H: history.New()}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	quiet := func() { time.Sleep(2 * time.Second) }
	// failover waits for a new leader of partition 0: within 5 s, or within
	// 10 s when the lost broker also led the coordination store's Raft
	// group (storeLeader, read before the fault), whose own election takes
	// 5-7 s before anything can be written (the worst case).
	failover := func(what string, old, storeLeader int32) {
		t.Helper()
		limit, why := 5*time.Second, ""
		if storeLeader == old {
			limit, why = 10*time.Second, " (it also led the coordination store: the store elects first)"
		}
		start := time.Now()
		nl, err := c.WaitLeader(topic, 0, old, limit)
		if err != nil {
			t.Fatalf("%s%s: %v", what, why, err)
		}
		t.Logf("%s: broker %d led partition 0; broker %d serves it %v later%s", what, old, nl, time.Since(start).Round(time.Millisecond), why)
	}
	quiet()

	// 1. Kill the leader, restart it.
	l := c.Leader(topic, 0)
	sl := c.StoreLeader()
	c.Kill(int(l))
	failover("kill the leader", l, sl)
	quiet()
	c.Restart(int(l))
	c.WaitAlive(3, 30*time.Second)
	quiet()

	// 2. Isolate the leader: clients still reach it; the others elect.
	l = c.Leader(topic, 0)
	c.Isolate(int(l))
	failover("isolate the leader", l, -1) // the store's servers stay connected
	quiet()
	c.Heal(int(l))
	c.WaitAlive(3, 30*time.Second)
	quiet()

	// 3. Kill two brokers, one after the other. The second kill leaves a
	// minority: the coordination store (a Raft group) cannot elect, so
	// nothing may be acknowledged until a second broker is back.
	l = c.Leader(topic, 0)
	sl = c.StoreLeader()
	c.Kill(int(l))
	failover("kill the leader (first of two)", l, sl)
	quiet()
	l2 := c.Leader(topic, 0)
	c.Kill(int(l2))
	quiet()
	c.Restart(int(l2))
	start := time.Now()
	if _, err := c.WaitLeader(topic, 0, -1, 30*time.Second); err != nil {
		t.Fatalf("majority back: %v", err)
	}
	t.Logf("kill two: majority back, partition 0 served %v after the restart", time.Since(start).Round(time.Millisecond))
	c.Restart(int(l))
	c.WaitAlive(3, 30*time.Second)
	quiet()

	// 4. Pause the leader's partition actor (its broker still heartbeats,
	// so nothing is elected): writes to it wait, then resume.
	l = c.Leader(topic, 0)
	c.PausePartition(int(l), topic, 0)
	time.Sleep(3 * time.Second)
	c.ResumePartition(int(l), topic, 0)
	quiet()

	// 5. Restart all.
	for i := range c.Size() {
		c.Kill(i)
	}
	c.RestartAll()
	c.WaitAlive(3, 60*time.Second)
	if _, err := c.WaitLeader(topic, 0, -1, 30*time.Second); err != nil {
		t.Fatalf("restart all: %v", err)
	}
	quiet()

	w.Stop()
	for i := range c.Size() {
		for p := range int32(partitions) {
			st, _ := c.Broker(i).Node().Partition(topic, p)
			t.Logf("broker %d %s-%d: %+v", i, topic, p, st)
		}
	}
	acked, failed, unknown := w.Counts()
	if err := w.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	rep := history.Check(w.H)
	t.Logf("sends: %d acknowledged, %d refused, %d unknown\n%s", acked, failed, unknown, rep.String())
	if acked == 0 {
		t.Fatal("nothing was acknowledged")
	}
	if rep.Failures() > 0 {
		t.Fatalf("history check failed")
	}
}
