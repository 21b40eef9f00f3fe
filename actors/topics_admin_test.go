package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit"
)

func fluxoRecord(v string) fluxo.Record { return fluxo.Record{Value: []byte(v)} }

func kafkaErr(err error) *kerr.Error {
	var te *actors.TopicError
	if errors.As(err, &te) {
		return te.Err
	}
	return nil
}

func TestNodeAddPartitions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testkit.StartBroker(t)
	n := b.Node()
	if _, err := b.CreateTopic(ctx, "grow", 2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		topic        string
		count        int32
		validateOnly bool
		want         *kerr.Error
		wantParts    int32 // the topic's count afterwards
	}{
		{"same count", "grow", 2, false, kerr.InvalidPartitions, 2},
		{"fewer", "grow", 1, false, kerr.InvalidPartitions, 2},
		{"above max", "grow", 10001, false, kerr.InvalidPartitions, 2},
		{"unknown topic", "nope", 3, false, kerr.UnknownTopicOrPartition, 2},
		{"unknown topic validate only", "nope", 3, true, kerr.UnknownTopicOrPartition, 2},
		{"validate only", "grow", 4, true, nil, 2},
		{"grow", "grow", 4, false, nil, 4},
		{"grow again", "grow", 5, false, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := n.AddPartitions(ctx, tc.topic, tc.count, tc.validateOnly)
			if tc.want != nil {
				if kafkaErr(err) != tc.want {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
			} else if err != nil || got.Partitions != tc.count {
				t.Fatalf("got %v, %v", got, err)
			}
			if p := n.Topic("grow").Partitions; p != tc.wantParts {
				t.Fatalf("topic has %d partitions, want %d", p, tc.wantParts)
			}
		})
	}
	// The new partitions serve.
	for p := int32(2); p < 5; p++ {
		if _, err := b.Produce(ctx, "grow", p, fluxoRecord("x")); err != nil {
			t.Fatalf("produce to new partition %d: %v", p, err)
		}
	}
}

func TestNodeUpdateTopicConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := testkit.StartBroker(t)
	n := b.Node()
	if _, err := b.CreateTopic(ctx, "cfg", 1); err != nil {
		t.Fatal(err)
	}
	i64 := func(v int64) *int64 { return &v }
	i32 := func(v int32) *int32 { return &v }
	str := func(v string) *string { return &v }
	for _, tc := range []struct {
		name         string
		fn           func(*fluxopb.TopicConfig) error
		validateOnly bool
		want         *kerr.Error
		check        func(*fluxopb.TopicConfig) bool
	}{
		{"set", func(c *fluxopb.TopicConfig) error {
			c.RetentionMs, c.MaxMessageBytes = i64(1000), i32(2000)
			return nil
		}, false, nil,
			func(c *fluxopb.TopicConfig) bool { return c.GetRetentionMs() == 1000 && c.GetMaxMessageBytes() == 2000 }},
		{"validate only leaves it", func(c *fluxopb.TopicConfig) error { c.RetentionMs = i64(5); return nil }, true, nil,
			func(c *fluxopb.TopicConfig) bool { return c.GetRetentionMs() == 1000 }},
		{"invalid", func(c *fluxopb.TopicConfig) error { c.RetentionBytes = i64(-7); return nil }, false, kerr.InvalidConfig,
			func(c *fluxopb.TopicConfig) bool { return c.RetentionBytes == nil }},
		{"compact refused", func(c *fluxopb.TopicConfig) error { c.CleanupPolicy = str("compact"); return nil }, false, kerr.InvalidConfig,
			func(c *fluxopb.TopicConfig) bool { return c.CleanupPolicy == nil }},
		{"fn refusal", func(c *fluxopb.TopicConfig) error { return &actors.TopicError{Err: kerr.InvalidRequest, Message: "no"} }, false, kerr.InvalidRequest,
			func(c *fluxopb.TopicConfig) bool { return c.GetRetentionMs() == 1000 }},
		{"clear one", func(c *fluxopb.TopicConfig) error { c.RetentionMs = nil; return nil }, false, nil,
			func(c *fluxopb.TopicConfig) bool { return c.RetentionMs == nil && c.GetMaxMessageBytes() == 2000 }},
		{"replace all", func(c *fluxopb.TopicConfig) error { *c = fluxopb.TopicConfig{RetentionBytes: i64(1 << 20)}; return nil }, false, nil,
			func(c *fluxopb.TopicConfig) bool { return c.MaxMessageBytes == nil && c.GetRetentionBytes() == 1<<20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.UpdateTopicConfig(ctx, "cfg", tc.fn, tc.validateOnly)
			if kafkaErr(err) != tc.want || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if c := n.Topic("cfg").GetConfig(); !tc.check(c) {
				t.Fatalf("config now %v", c)
			}
		})
	}
	if _, err := n.UpdateTopicConfig(ctx, "nope", func(*fluxopb.TopicConfig) error { return nil }, false); kafkaErr(err) != kerr.UnknownTopicOrPartition {
		t.Fatalf("unknown topic: %v", err)
	}
	// A lowered max.message.bytes reaches the running partition.
	if _, err := n.UpdateTopicConfig(ctx, "cfg", func(c *fluxopb.TopicConfig) error { c.MaxMessageBytes = i32(100); return nil }, false); err != nil {
		t.Fatal(err)
	}
	big := fluxoRecord(string(make([]byte, 500)))
	if _, err := b.Produce(ctx, "cfg", 0, big); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce above the lowered limit: %v", err)
	}
}
