package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("loadgen: unknown compression %q (none, snappy, lz4, zstd, gzip)", name)
}

func (c *Config) producerOpts() ([]kgo.Opt, error) {
	codec, err := compression(c.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...), kgo.DefaultProduceTopic(c.Topic),
		kgo.ProducerBatchCompression(codec), kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(1 << 16),
	}
	switch c.Acks {
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	return opts, nil
}

// EnsureTopic creates cfg's topic with cfg.Partitions partitions unless it
// exists.
func EnsureTopic(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	rf := cfg.Replication
	if rf == 0 {
		rf = -1
	}
	res, err := kadm.NewClient(cl).CreateTopic(ctx, cfg.Partitions, rf, nil, cfg.Topic)
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("loadgen: create topic %s: %w", cfg.Topic, err)
	}
	return nil
}

// Produce writes cfg.Records records with cfg.Producers clients and waits
// for every acknowledgement. Latency is from the call to Produce to the
// acknowledgement. Any failed record fails the run.
func Produce(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	if err := EnsureTopic(ctx, cfg); err != nil {
		return Result{}, err
	}
	opts, err := cfg.producerOpts()
	if err != nil {
		return Result{}, err
	}
	clients := make([]*kgo.Client, cfg.Producers)
	for i := range clients {
		if clients[i], err = kgo.NewClient(opts...); err != nil {
			return Result{}, err
		}
		defer clients[i].Close()
	}
	vals := NewValues(cfg.RecordBytes)
	lat := newLatencies(cfg.Records)
	var acked, failed atomic.Int64
	var firstErr atomic.Value
	stop := cfg.report("produce", &acked, nil)
	start := time.Now()
	p := pacer{start: start, rate: cfg.Rate}
	var wg sync.WaitGroup
	for w, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(w); i < cfg.Records; i += int64(len(clients)) {
				p.wait(i)
				if ctx.Err() != nil {
					return
				}
				sent := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: vals.At(i)}, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					lat.add(time.Since(sent))
					acked.Add(1)
				})
			}
			cl.Flush(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("loadgen: produce: %d of %d acknowledged: %w", acked.Load(), cfg.Records, err)
	}
	if f := failed.Load(); f > 0 {
		return Result{}, fmt.Errorf("loadgen: produce: %d of %d records failed, first: %v", f, cfg.Records, firstErr.Load())
	}
	return Result{Workload: "produce", Records: cfg.Records, RecordBytes: cfg.RecordBytes,
		Bytes: cfg.Records * int64(cfg.RecordBytes), Elapsed: elapsed, Latency: lat.percentiles()}, nil
}

// Consume reads cfg.Records records from the start of every partition of
// cfg.Topic (a catch-up read: they must have been written before). It
// counts exactly cfg.Records records, and its RecordBytes is their mean
// value size, whatever cfg.RecordBytes says.
func Consume(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	var got, bytes atomic.Int64
	stop := cfg.report("consume", &got, &bytes)
	start := time.Now()
	for got.Load() < cfg.Records {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			stop()
			return Result{}, fmt.Errorf("loadgen: consume: read %d of %d: %w", got.Load(), cfg.Records, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("loadgen: fetch %s/%d: %w", t, p, err) })
		if ferr != nil {
			stop()
			return Result{}, ferr
		}
		// Count exactly cfg.Records: a fetch may run past them.
		fs.EachRecord(func(r *kgo.Record) {
			if got.Load() < cfg.Records {
				bytes.Add(int64(len(r.Value)))
				got.Add(1)
			}
		})
	}
	elapsed := time.Since(start)
	stop()
	n := got.Load()
	return Result{Workload: "consume", Records: n, RecordBytes: int(bytes.Load() / n), Bytes: bytes.Load(), Elapsed: elapsed}, nil
}

// E2E produces cfg.Records records at cfg.Rate while a consumer reads them
// from the end of the topic, and measures each record's latency from just
// before Produce to its arrival at the consumer (the send time travels in
// the value's first 8 bytes; both ends share this process's clock).
func E2E(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	if cfg.RecordBytes < 8 {
		return Result{}, fmt.Errorf("loadgen: e2e needs records of at least 8 bytes, got %d", cfg.RecordBytes)
	}
	if cfg.Rate <= 0 {
		return Result{}, errors.New("loadgen: e2e needs a rate (records/s): latency at saturation measures queues")
	}
	if err := EnsureTopic(ctx, cfg); err != nil {
		return Result{}, err
	}
	// Consume from each partition's end as of now, so nothing produced
	// below is missed however long the consumer takes to start.
	ends, err := endOffsets(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(ends), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return Result{}, err
	}
	defer cons.Close()

	lat := newLatencies(cfg.Records)
	var got atomic.Int64
	consumed := make(chan error, 1)
	go func() {
		for got.Load() < cfg.Records {
			fs := cons.PollFetches(ctx)
			now := time.Now().UnixNano()
			if err := ctx.Err(); err != nil {
				consumed <- fmt.Errorf("loadgen: e2e: read %d of %d: %w", got.Load(), cfg.Records, err)
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					lat.add(time.Duration(now - int64(binary.LittleEndian.Uint64(r.Value))))
				}
			})
			got.Add(int64(fs.NumRecords()))
		}
		consumed <- nil
	}()

	pcfg := cfg
	pcfg.Progress = nil
	opts, err := pcfg.producerOpts()
	if err != nil {
		return Result{}, err
	}
	prod, err := kgo.NewClient(append(opts, kgo.ProducerLinger(0))...)
	if err != nil {
		return Result{}, err
	}
	defer prod.Close()
	vals := NewValues(cfg.RecordBytes)
	stop := cfg.report("e2e", &got, nil)
	start := time.Now()
	p := pacer{start: start, rate: cfg.Rate}
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range cfg.Records {
		p.wait(i)
		if ctx.Err() != nil {
			break
		}
		v := make([]byte, cfg.RecordBytes)
		copy(v[8:], vals.At(i)[8:])
		binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		prod.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	prod.Flush(ctx)
	err = <-consumed
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return Result{}, err
	}
	if f := failed.Load(); f > 0 {
		return Result{}, fmt.Errorf("loadgen: e2e: %d of %d records failed, first: %v", f, cfg.Records, firstErr.Load())
	}
	return Result{Workload: "e2e", Records: cfg.Records, RecordBytes: cfg.RecordBytes,
		Bytes: cfg.Records * int64(cfg.RecordBytes), Elapsed: elapsed, Latency: lat.percentiles()}, nil
}

// endOffsets is every partition of cfg.Topic at its current end.
func endOffsets(ctx context.Context, cfg Config) (map[string]map[int32]kgo.Offset, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen: end offsets of %s: %w", cfg.Topic, err)
	}
	out := map[int32]kgo.Offset{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = kgo.NewOffset().At(o.Offset) })
	return map[string]map[int32]kgo.Offset{cfg.Topic: out}, nil
}

// report calls cfg.Progress every second until the returned stop, which
// reports once more. bytes counts the value bytes done; nil means done
// records of cfg.RecordBytes.
func (c *Config) report(workload string, done, bytes *atomic.Int64) (stop func()) {
	if c.Progress == nil {
		return func() {}
	}
	start := time.Now()
	progress := func() Progress {
		p := Progress{Workload: workload, Done: done.Load(), Total: c.Records, Elapsed: time.Since(start)}
		if bytes != nil {
			p.Bytes = bytes.Load()
		} else {
			p.Bytes = p.Done * int64(c.RecordBytes)
		}
		return p
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.Progress(progress())
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		c.Progress(progress())
	}
}
