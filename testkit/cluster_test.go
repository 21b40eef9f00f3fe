package testkit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo/testkit"
)

func TestClusterReplicatesAndFailsOver(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopic(ctx, 3, 3, nil, "t")
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	// Metadata is eventually consistent across brokers (as in Kafka): the
	// broker asked may learn the new leaders a moment after the creator.
	for {
		md, err := adm.Metadata(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		ready := len(md.Brokers) == 3
		for _, p := range md.Topics["t"].Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 0 {
				ready = false
			}
		}
		if ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("metadata never showed 3 brokers and 3 replicas in sync: %+v", md.Topics["t"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			r := &kgo.Record{Topic: "t", Partition: 0, Value: []byte(fmt.Sprint(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	start := time.Now()
	produce(0, 100)
	t.Logf("100 acks=all records in %v", time.Since(start))
	// acks=1 is answered at the leader's durable end; the high watermark
	// moves later, when followers fetch with nothing left to release. It
	// must still reach readers.
	one, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	if err := one.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 1, Value: []byte("one")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	one.Close()
	for {
		ends, err := adm.ListEndOffsets(ctx, "t")
		if err == nil {
			if o, _ := ends.Lookup("t", 1); o.Offset == 1 {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the high watermark of t-1 never reached the acks=1 record: %v", ends)
		}
		time.Sleep(20 * time.Millisecond)
	}
	leader := c.Leader("t", 0)
	c.Kill(int(leader))
	killed := time.Now()
	nl, err := c.WaitLeader("t", 0, leader, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %d killed; %d leads after %v", leader, nl, time.Since(killed))
	produce(100, 100)
	for i := 0; i < 3; i++ {
		if b := c.Broker(i); b != nil {
			st, ok := b.Node().Partition("t", 0)
			t.Logf("broker %d: %+v %v", i, st, ok)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < 200 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil && ctx.Err() != nil {
			t.Fatalf("consume: %v after %d records", err, len(got))
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d is %q; all: %s", i, v, strings.Join(got, ","))
		}
	}
}

func TestClusterGroupCoordinatorFailover(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 3, nil, "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "g", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A member consumes 10 records and commits.
	consume := func(n int) []string {
		m, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumerGroup("grp"), kgo.ConsumeTopics("g"),
			kgo.DisableAutoCommit())
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var got []string
		for len(got) < n {
			fs := m.PollRecords(ctx, n-len(got))
			if ctx.Err() != nil {
				t.Fatalf("consume: %v after %v", ctx.Err(), got)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			if err := m.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("commit: %v", err)
			}
		}
		return got
	}
	first := consume(10)
	var id int32 = -1
	adm.FindGroupCoordinators(ctx, "grp").Each(func(d kadm.FindCoordinatorResponse) { id = d.NodeID })
	before, err := adm.FetchOffsets(ctx, "grp")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("coordinator %d; committed %v", id, before)
	c.Kill(int(id))
	// A client asking now could still be sent to the dead coordinator
	// (franz-go then retries it until its context ends): wait until the
	// others have noticed.
	c.WaitAlive(2, 10*time.Second)
	cl2, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	adm2 := kadm.NewClient(cl2)
	var after kadm.OffsetResponses
	for {
		after, err = adm2.FetchOffsets(ctx, "grp")
		if err == nil && after.Error() == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch offsets after failover: %v / %v", err, after.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []int32{0, 1} {
		b, _ := before.Lookup("g", p)
		a, _ := after.Lookup("g", p)
		if a.At != b.At {
			t.Fatalf("partition %d: committed %d before the coordinator died, %d after", p, b.At, a.At)
		}
	}
	rest := consume(10)
	seen := map[string]bool{}
	for _, v := range append(first, rest...) {
		if seen[v] {
			t.Fatalf("record %s consumed twice: %v then %v", v, first, rest)
		}
		seen[v] = true
	}
}
