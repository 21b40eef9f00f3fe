package fluxo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/testkit"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exercise runs the same produce/fetch checks against any Conn.
func exercise(t *testing.T, ctx context.Context, c fluxo.Conn) {
	t.Helper()
	if _, err := c.CreateTopic(ctx, "orders", 3); err != nil {
		t.Fatal(err)
	}
	want := map[int32][]string{}
	for i := 0; i < 30; i++ {
		p := int32(i % 3)
		v := fmt.Sprintf("order-%d", i)
		off, err := c.Produce(ctx, "orders", p, fluxo.Record{Key: []byte("k"), Value: []byte(v), Headers: []fluxo.Header{{Key: "n", Value: []byte(v)}}})
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if off != int64(len(want[p])) {
			t.Fatalf("produce %d to partition %d: offset %d, want %d", i, p, off, len(want[p]))
		}
		want[p] = append(want[p], v)
	}
	for p := int32(0); p < 3; p++ {
		res, err := c.Fetch(ctx, "orders", p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.HighWatermark != int64(len(want[p])) {
			t.Fatalf("partition %d: high watermark %d, want %d", p, res.HighWatermark, len(want[p]))
		}
		if len(res.Records) != len(want[p]) {
			t.Fatalf("partition %d: %d records, want %d", p, len(res.Records), len(want[p]))
		}
		for i, r := range res.Records {
			if r.Offset != int64(i) || string(r.Value) != want[p][i] || string(r.Headers[0].Value) != want[p][i] {
				t.Fatalf("partition %d record %d: %+v", p, i, r)
			}
		}
		// Fetching from the middle skips the earlier records of the batch.
		mid, err := c.Fetch(ctx, "orders", p, 5)
		if err != nil || len(mid.Records) != len(want[p])-5 || mid.Records[0].Offset != 5 {
			t.Fatalf("fetch from 5: %+v %v", mid, err)
		}
	}
	if _, err := c.Produce(ctx, "nope", 0, fluxo.Record{Value: []byte("x")}); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to unknown topic: %v", err)
	}
	if _, err := c.Fetch(ctx, "orders", 0, 99); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch past the end: %v", err)
	}
	if _, err := c.CreateTopic(ctx, "orders", 1); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := c.CreateTopic(ctx, "bad/name", 1); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := c.CreateTopic(ctx, "neg", -3); !errors.Is(err, kerr.InvalidPartitions) {
		t.Fatalf("negative partitions: %v", err)
	}
}

func TestEmbeddedProduceFetch(t *testing.T) {
	ctx := testCtx(t)
	b := testkit.StartBroker(t)
	exercise(t, ctx, b)
}

func TestRemoteProduceFetch(t *testing.T) {
	ctx := testCtx(t)
	b := testkit.StartBroker(t, fluxo.WithRemoteListen("127.0.0.1:0"))
	c, err := fluxo.Dial(ctx, b.RemoteAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exercise(t, ctx, c)
}

func TestDialUnreachable(t *testing.T) {
	ctx := testCtx(t)
	_, err := fluxo.Dial(ctx, "127.0.0.1:1", fluxo.ClientTimeout(time.Second))
	if err == nil {
		t.Fatal("dial of a closed port succeeded")
	}
}

func TestLongPollWakesOnProduce(t *testing.T) {
	ctx := testCtx(t)
	b := testkit.StartBroker(t)
	if _, err := b.CreateTopic(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	got := make(chan *fluxo.FetchResult, 1)
	go func() {
		res, err := b.Fetch(ctx, "t", 0, 0, fluxo.Wait(20*time.Second, 1))
		if err != nil {
			t.Error(err)
		}
		got <- res
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := b.Produce(ctx, "t", 0, fluxo.Record{Value: []byte("wake")}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res == nil || len(res.Records) != 1 || string(res.Records[0].Value) != "wake" {
			t.Fatalf("long poll returned %+v", res)
		}
	case <-ctx.Done():
		t.Fatal("long poll never returned")
	}
	// With nothing new, the poll ends empty after MaxWait.
	res, err := b.Fetch(ctx, "t", 0, 1, fluxo.Wait(30*time.Millisecond, 1))
	if err != nil || len(res.Records) != 0 {
		t.Fatalf("idle poll: %+v %v", res, err)
	}
}

func TestRestartKeepsTopicsAndRecords(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	b := testkit.StartBrokerAt(t, dir)
	if _, err := b.CreateTopic(ctx, "keep", 2, fluxo.RetentionMs(-1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := b.Produce(ctx, "keep", 1, fluxo.Record{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := testkit.StartBrokerAt(t, dir)
	topics, err := b2.Topics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Name != "keep" || topics[0].Partitions != 2 || topics[0].GetConfig().GetRetentionMs() != -1 {
		t.Fatalf("topics after restart: %v %v", topics, err)
	}
	res, err := b2.Fetch(ctx, "keep", 1, 0)
	if err != nil || len(res.Records) != 10 || res.HighWatermark != 10 {
		t.Fatalf("records after restart: %+v %v", res, err)
	}
	off, err := b2.Produce(ctx, "keep", 1, fluxo.Record{Value: []byte("next")})
	if err != nil || off != 10 {
		t.Fatalf("append after restart at %d: %v", off, err)
	}
}

func TestDeleteTopicRemovesData(t *testing.T) {
	ctx := testCtx(t)
	b := testkit.StartBroker(t)
	if _, err := b.CreateTopic(ctx, "gone", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Produce(ctx, "gone", 0, fluxo.Record{Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTopic(ctx, "gone"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := b.Fetch(ctx, "gone", 0, 0); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("fetch after delete: %v", err)
	}
	// A new topic of the same name starts empty.
	if _, err := b.CreateTopic(ctx, "gone", 1); err != nil {
		t.Fatal(err)
	}
	res, err := b.Fetch(ctx, "gone", 0, 0)
	if err != nil || len(res.Records) != 0 || res.HighWatermark != 0 {
		t.Fatalf("recreated topic not empty: %+v %v", res, err)
	}
}

func TestDeleteRecordsAndRetention(t *testing.T) {
	ctx := testCtx(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	b := testkit.StartBroker(t, fluxo.WithNodeConfig(func(c *actors.Config) {
		c.SegmentBytes = 1 << 20
		c.Now = clock
		c.RetentionCheckInterval = time.Hour // run by hand below
	}))
	if _, err := b.CreateTopic(ctx, "r", 1, fluxo.RetentionMs(60_000)); err != nil {
		t.Fatal(err)
	}
	// About 3 MiB in 64 KiB records: several segments.
	val := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 48; i++ {
		if _, err := b.Produce(ctx, "r", 0, fluxo.Record{Value: val, Timestamp: now.UnixMilli()}); err != nil {
			t.Fatal(err)
		}
	}
	low, err := b.DeleteRecords(ctx, "r", 0, 3)
	if err != nil || low != 3 {
		t.Fatalf("delete records: %d %v", low, err)
	}
	if _, err := b.Fetch(ctx, "r", 0, 2); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch below log start: %v", err)
	}
	if _, err := b.DeleteRecords(ctx, "r", 0, 100); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %v", err)
	}
	// Nothing has expired yet.
	if moved := b.Node().RunRetention(ctx); moved != 0 {
		t.Fatalf("retention moved %d partitions before expiry", moved)
	}
	now = now.Add(2 * time.Minute)
	if moved := b.Node().RunRetention(ctx); moved != 1 {
		t.Fatalf("retention moved %d partitions after expiry, want 1", moved)
	}
	res, err := b.Fetch(ctx, "r", 0, 48)
	if err != nil || res.LogStartOffset <= 3 {
		t.Fatalf("log start after retention: %+v %v", res, err)
	}
	// Appends continue at the old end.
	off, err := b.Produce(ctx, "r", 0, fluxo.Record{Value: []byte("after")})
	if err != nil || off != 48 {
		t.Fatalf("append after retention: %d %v", off, err)
	}
}
