package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// startKafka starts an embedded broker with the Kafka listener on a free
// loopback port and returns it with a franz-go client pointed at it.
func startKafka(t *testing.T, opts ...kgo.Opt) (*fluxo.Broker, *kgo.Client) {
	t.Helper()
	b := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return b, cl
}

func TestMetadataAndApiVersions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cl := startKafka(t)
	if _, err := b.CreateTopic(ctx, "meta", 3); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("api versions: %v", v.Err)
		}
		if max, ok := v.KeyMaxVersion(3); !ok || max != 12 {
			t.Fatalf("metadata max version %d %v, want 12", max, ok)
		}
	}
	md, err := adm.Metadata(ctx, "meta")
	if err != nil {
		t.Fatal(err)
	}
	td := md.Topics["meta"]
	if td.Err != nil || len(td.Partitions) != 3 || td.ID == ([16]byte{}) {
		t.Fatalf("metadata: %+v", td)
	}
	for _, p := range td.Partitions {
		if p.Leader != 0 || p.Err != nil {
			t.Fatalf("partition %+v", p)
		}
	}
}
