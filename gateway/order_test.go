package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

// TestPipelinedProduceKeepsOrder sends many non-idempotent produce requests
// for one partition on one connection without waiting for answers: the log
// must hold them in the order they were sent, and the answers come back in
// order with increasing offsets.
func TestPipelinedProduceKeepsOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "ordered", 1); err != nil {
		t.Fatal(err)
	}
	c := rawDial(t, b.KafkaAddr())
	const n = 100
	var all []byte
	for i := 0; i < n; i++ {
		batch, err := recordbatch.Build([]recordbatch.Record{{Timestamp: 1, Value: []byte(fmt.Sprint(i))}}, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks = 1
		req.TimeoutMillis = 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "ordered"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		all = append(all, frame(0, 7, int32(i), req.AppendTo(nil))...)
	}
	go c.Write(all)
	last := int64(-1)
	for i := 0; i < n; i++ {
		corr, body := readResponse(t, c)
		if corr != int32(i) {
			t.Fatalf("answer %d has correlation id %d", i, corr)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(7)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset <= last {
			t.Fatalf("answer %d: code %d offset %d after %d", i, p.ErrorCode, p.BaseOffset, last)
		}
		last = p.BaseOffset
	}
	res, err := b.Fetch(ctx, "ordered", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Records {
		if string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("offset %d holds %q, sent as request %d", i, r.Value, i)
		}
	}
	if len(res.Records) != n {
		t.Fatalf("%d records, want %d", len(res.Records), n)
	}
}
