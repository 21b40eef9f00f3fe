package gateway_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// BenchmarkFetchCatchUp measures a consumer reading a partition's backlog
// from the start: 64 MiB of 1 KiB records stored in 16-record batches
// (produced through the Go API, without fsync), consumed by a kgo client
// with its default fetch sizes. Each iteration is a new consumer.
func BenchmarkFetchCatchUp(b *testing.B) {
	const (
		recordSize = 1 << 10
		perBatch   = 16
		total      = 64 << 20
		records    = total / recordSize
		batches    = records / perBatch
		producers  = 4
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	br := testkit.StartBroker(b, fluxo.WithKafkaListen("127.0.0.1:0", ""), fluxo.WithoutFsync())
	if _, err := br.CreateTopic(ctx, "catchup", 1); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, recordSize)
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for w := 0; w < producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < batches; i += producers {
				recs := make([]fluxo.Record, perBatch)
				for j := range recs {
					recs[j] = fluxo.Record{Value: value}
				}
				if _, err := br.Produce(ctx, "catchup", 0, recs...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}

	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(br.KafkaAddr()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"catchup": {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < records {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				b.Fatalf("consumed %d of %d records: %v", n, records, ctx.Err())
			}
			fs.EachError(func(_ string, _ int32, err error) { b.Fatal(err) })
			n += fs.NumRecords()
		}
		cl.Close()
	}
}
