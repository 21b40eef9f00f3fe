package bench

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
)

const (
	recordBytes = 1 << 10
	partitions  = 4
	topic       = "bench"
)

// target is a broker to measure: its Kafka address and how to stop it.
type target struct {
	addr string
	stop func()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startFluxo(b *testing.B, fsync bool) target {
	opts := []fluxo.Option{fluxo.WithDataDir(b.TempDir()), fluxo.WithLogger(quiet()), fluxo.WithKafkaListen("127.0.0.1:0", "")}
	if !fsync {
		opts = append(opts, fluxo.WithoutFsync())
	}
	br, err := fluxo.Start(context.Background(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := br.CreateTopic(context.Background(), topic, partitions); err != nil {
		b.Fatal(err)
	}
	return target{addr: br.KafkaAddr(), stop: func() { br.Close() }}
}

func startKfake(b *testing.B, opts ...kfake.Opt) (target, *kfake.Cluster) {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return target{addr: c.ListenAddrs()[0], stop: c.Close}, c
}

// produce writes n records of recordBytes with an idempotent, acks=all
// franz-go producer (its defaults) and waits for every acknowledgement.
func produce(b *testing.B, addr string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Incompressible values: franz-go compresses with snappy by default, so
	// each record gets its own slice of a 16 MiB random pool (identical or
	// zero values would turn every figure into a compression benchmark).
	const pool = 16 << 20
	rnd := make([]byte, pool+recordBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(rng.Uint32())
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		off := (i * recordBytes) % pool
		cl.Produce(context.Background(), &kgo.Record{Value: rnd[off : off+recordBytes]}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records failed", f, n)
	}
}

// consume reads n records from the start of every partition.
func consume(b *testing.B, addr string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("consumed %d of %d: %v", got, n, err)
		}
		fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
		got += fs.NumRecords()
	}
}

func ensureTopic(b *testing.B, addr string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic)
}

var produceTargets = []struct {
	name  string
	start func(*testing.B) target
}{
	{"fluxo-fsync", func(b *testing.B) target { return startFluxo(b, true) }},
	{"fluxo-nosync", func(b *testing.B) target { return startFluxo(b, false) }},
	{"kfake-fsync", func(b *testing.B) target {
		t, _ := startKfake(b, kfake.DataDir(b.TempDir()), kfake.SyncWrites())
		return t
	}},
	{"kfake-memory", func(b *testing.B) target { t, _ := startKfake(b); return t }},
	{"null", func(b *testing.B) target {
		nb, err := StartNullBroker("127.0.0.1:0", topic, partitions)
		if err != nil {
			b.Fatal(err)
		}
		return target{addr: nb.Addr(), stop: nb.Close}
	}},
}

// BenchmarkProduce: 1 KiB records, franz-go defaults (idempotent, acks=all),
// into a 4-partition topic; b.N records per run. "null" is the ceiling: a
// broker that acknowledges and stores nothing.
func BenchmarkProduce(b *testing.B) {
	for _, tc := range produceTargets {
		b.Run(tc.name, func(b *testing.B) {
			t := tc.start(b)
			defer t.stop()
			ensureTopic(b, t.addr)
			b.SetBytes(recordBytes)
			b.ResetTimer()
			produce(b, t.addr, b.N)
		})
	}
}

// BenchmarkConsume: catch-up read of b.N 1 KiB records written beforehand.
func BenchmarkConsume(b *testing.B) {
	for _, tc := range produceTargets {
		if tc.name == "fluxo-nosync" || tc.name == "kfake-fsync" || tc.name == "null" {
			continue
		}
		b.Run(tc.name, func(b *testing.B) {
			t := tc.start(b)
			defer t.stop()
			ensureTopic(b, t.addr)
			produce(b, t.addr, b.N)
			b.SetBytes(recordBytes)
			b.ResetTimer()
			consume(b, t.addr, b.N)
		})
	}
}
