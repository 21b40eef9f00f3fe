package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkRebalance measures one rebalance of a 10-member group: with 9
// members stable on a 10-partition topic, a 10th joins; timed from its
// client's creation until DescribeGroups shows 10 members, Stable, every
// partition owned once. Members heartbeat every 100 ms (franz-go's default
// is 3 s, which then dominates: members learn of a rebalance from a
// heartbeat). Then the 10th leaves (untimed) for the next iteration.
func BenchmarkRebalance(b *testing.B) {
	for _, hb := range []time.Duration{100 * time.Millisecond, 3 * time.Second} {
		b.Run(fmt.Sprintf("10-members/heartbeat-%v", hb), func(b *testing.B) {
			t := startFluxo(b, true)
			defer t.stop()
			adm, err := kgo.NewClient(kgo.SeedBrokers(t.addr))
			if err != nil {
				b.Fatal(err)
			}
			defer adm.Close()
			admin := kadm.NewClient(adm)
			if _, err := admin.CreateTopic(context.Background(), 10, 1, nil, "rebalance"); err != nil {
				b.Fatal(err)
			}
			member := func(name string) *kgo.Client {
				cl, err := kgo.NewClient(kgo.SeedBrokers(t.addr), kgo.ClientID(name), kgo.ConsumerGroup("rb"), kgo.ConsumeTopics("rebalance"),
					kgo.HeartbeatInterval(hb), kgo.Balancers(kgo.RangeBalancer()))
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					for !cl.PollFetches(context.Background()).IsClientClosed() {
					}
				}()
				return cl
			}
			for i := 0; i < 9; i++ {
				defer member(fmt.Sprint("m", i)).Close()
			}
			waitStable(b, admin, 9)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				m := member("m9")
				waitStable(b, admin, 10)
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/rebalance")
				b.StopTimer()
				m.Close()
				waitStable(b, admin, 9)
				b.StartTimer()
			}
		})
	}
}

func waitStable(b *testing.B, adm *kadm.Client, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ds, err := adm.DescribeGroups(context.Background(), "rb")
		if err == nil {
			d := ds["rb"]
			if d.State == "Stable" && len(d.Members) == n && len(d.AssignedPartitions()["rebalance"]) == 10 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("group never stable with %d members", n)
}
