package bench

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The ceiling broker must really acknowledge what a default franz-go
// producer sends, with offsets that advance per partition, or the ceiling
// figure would measure a failing client.
func TestNullBrokerAcknowledgesProduce(t *testing.T) {
	nb, err := StartNullBroker("127.0.0.1:0", "t", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(nb.Addr()), kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := map[int32]int64{}
	for i := 0; i < 50; i++ {
		var recs []*kgo.Record
		for j := 0; j < 3; j++ {
			recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: []byte("v")})
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		for _, r := range res {
			if r.Record.Offset != next[r.Record.Partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.Record.Partition, r.Record.Offset, next[r.Record.Partition])
			}
			next[r.Record.Partition]++
		}
	}
	if next[0] != 75 || next[1] != 75 {
		t.Fatalf("acknowledged %v, want 75 per partition", next)
	}
}
