package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// Recovery is the restart measurement of a Fluxo node holding data.
type Recovery struct {
	Partitions   int             `json:"partitions"`
	Records      int64           `json:"records"`
	Bytes        int64           `json:"bytes"`         // record value bytes written
	DiskBytes    int64           `json:"disk_bytes"`    // the data directory's files after the fill
	Fill         *loadgen.Result `json:"fill"`          // the produce that filled it
	CleanStop    time.Duration   `json:"clean_stop_ns"` // SIGTERM to exit
	CleanReady   time.Duration   `json:"clean_ready_ns"`
	CrashRecords int64           `json:"crash_records"` // acknowledged while the node was killed
	CrashReady   time.Duration   `json:"crash_ready_ns"`
	EmptyReady   time.Duration   `json:"empty_ready_ns"` // a fresh node's start, for reference
}

const recoveryTopic = "recovery"

// recovery fills a child `fluxo serve` with -recovery-bytes of 1 KiB
// records, then times (a) a restart after SIGTERM and (b) a restart after
// kill -9 taken while a producer is writing, each from the exec until the
// node serves: a produce to every partition is acknowledged and a fetch at
// every partition's last acknowledged offset returns that record.
func (h *harness) recovery(ctx context.Context) {
	const target = "fluxo"
	h.logf("== %s %s: a child fluxo serve holding %s in %d partitions", target, wRecovery, sizeString(h.o.recoveryBytes), h.o.recoveryPartitions)
	dir := filepath.Join(h.dir, "recovery")
	defer os.RemoveAll(dir)
	if free, err := freeBytes(h.dir); err == nil && free < diskNeeded(h.o.recoveryBytes) {
		h.fail(target, wRecovery, fmt.Errorf("%s free under %s, the run needs about %s", sizeString(free), h.dir, sizeString(diskNeeded(h.o.recoveryBytes))))
		return
	}
	rec, err := h.measureRecovery(ctx, dir)
	if err != nil {
		h.fail(target, wRecovery, err)
		return
	}
	h.rep.Recovery = rec
}

func (h *harness) measureRecovery(ctx context.Context, dir string) (*Recovery, error) {
	ports, err := h.ports.take(1)
	if err != nil {
		return nil, err
	}
	addr := loopback(ports[0])
	logPath := filepath.Join(h.dir, "recovery.log")
	args := []string{"--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--remote-listen", "",
		"--metrics-listen", "", "--log-format", "text"}
	parts := int32(h.o.recoveryPartitions)
	rec := &Recovery{Partitions: h.o.recoveryPartitions}

	c, err := h.startServe(ctx, "fluxo recovery node", logPath, args...)
	if err != nil {
		return nil, err
	}
	defer func() { c.stop(time.Minute) }()
	h.logf("  started pid %d, Kafka %s", c.pid(), addr)
	if err := waitListening(ctx, c, addr); err != nil {
		return nil, err
	}
	rec.EmptyReady = time.Since(c.started)
	if err := prepareTopic(ctx, addr, recoveryTopic, parts, 0); err != nil {
		return nil, err
	}

	records := h.o.recoveryBytes / 1024
	h.logf("  filling: %d records of 1 KiB", records)
	fctx, cancel := context.WithTimeout(ctx, h.o.timeout+time.Duration(h.o.recoveryBytes/(20<<20))*time.Second)
	fill, err := loadgen.Produce(fctx, loadgen.Config{Brokers: []string{addr}, Topic: recoveryTopic, Records: records,
		RecordBytes: 1024, Partitions: parts, Progress: h.progress("fluxo fill")})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("fill: %w", err)
	}
	fill.Latency = loadgen.Percentiles{} // not a figure of this workload
	h.logf("  fill %s", fill)
	rec.Fill, rec.Records, rec.Bytes = &fill, fill.Records, fill.Bytes
	last, err := lastOffsets(ctx, addr, recoveryTopic)
	if err != nil {
		return nil, err
	}
	rec.DiskBytes = dirBytes(dir)

	// (a) clean stop, restart.
	if rec.CleanStop, err = c.stop(5 * time.Minute); err != nil {
		return nil, err
	}
	h.logf("  SIGTERM: stopped in %v (%s on disk)", rec.CleanStop.Round(time.Millisecond), sizeString(rec.DiskBytes))
	if c, err = h.startServe(ctx, "fluxo recovery node", logPath, args...); err != nil {
		return nil, err
	}
	if rec.CleanReady, err = waitServing(ctx, c, addr, last); err != nil {
		return nil, fmt.Errorf("after a clean stop: %w", err)
	}
	h.logf("  fluxo recovery clean restart: pid %d serving %v after its start", c.pid(), rec.CleanReady.Round(time.Millisecond))

	// (b) kill -9 while a producer writes, restart.
	acked, n, err := produceThenKill(ctx, addr, c, parts)
	if err != nil {
		return nil, err
	}
	for p, o := range acked {
		last[p] = max(last[p], o)
	}
	rec.CrashRecords = n
	h.logf("  kill -9 (pid %d) under a producer (%d records acknowledged in its last second)", c.pid(), n)
	if c, err = h.startServe(ctx, "fluxo recovery node", logPath, args...); err != nil {
		return nil, err
	}
	if rec.CrashReady, err = waitServing(ctx, c, addr, last); err != nil {
		return nil, fmt.Errorf("after kill -9: %w", err)
	}
	h.logf("  fluxo recovery after kill -9: pid %d serving %v after its start", c.pid(), rec.CrashReady.Round(time.Millisecond))
	return rec, nil
}

// produceThenKill writes to every partition for a second, kills the node
// with SIGKILL while the producer is still writing, and returns the highest
// acknowledged offset per partition.
func produceThenKill(ctx context.Context, addr string, c *child, parts int32) (map[int32]int64, int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(recoveryTopic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.RecordDeliveryTimeout(2*time.Second))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	// Produce blocks while the client's buffer is full, and a killed
	// broker never frees it: cancelling pctx releases the writer.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	acked := map[int32]int64{}
	var n int64
	vals := loadgen.NewValues(1024)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cl.Produce(pctx, &kgo.Record{Value: vals.At(i)}, func(r *kgo.Record, err error) {
				if err != nil {
					return
				}
				mu.Lock()
				if r.Offset > acked[r.Partition] {
					acked[r.Partition] = r.Offset
				}
				n++
				mu.Unlock()
			})
		}
	}()
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	c.kill()
	close(stop)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if int32(len(acked)) < parts {
		return nil, 0, fmt.Errorf("%d records acknowledged in the second before kill -9, on %d of %d partitions", n, len(acked), parts)
	}
	return maps.Clone(acked), n, nil
}

// lastOffsets is the offset of every partition's last record.
func lastOffsets(ctx context.Context, addr, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset - 1 })
	return out, nil
}

// waitListening waits until the child accepts TCP connections on addr.
func waitListening(ctx context.Context, c *child, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		if err := c.running(); err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w", c.name, addr, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitServing waits until the child serves the recovery topic: a produce
// to every partition is acknowledged and a fetch at every partition's
// offset in last returns that record. It returns the time since the
// child's exec.
func waitServing(ctx context.Context, c *child, addr string, last map[int32]int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := waitListening(ctx, c, addr); err != nil {
		return 0, err
	}
	var lastErr error
	for {
		if err := c.running(); err != nil {
			return 0, err
		}
		if lastErr = serves(ctx, addr, last); lastErr == nil {
			return time.Since(c.started), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s not serving: %v (last: %v)", c.name, ctx.Err(), lastErr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// serves is one attempt of waitServing's check, with short client
// timeouts and backoffs so a broker that is nearly ready is not waited for
// longer than a few milliseconds.
func serves(ctx context.Context, addr string, last map[int32]int64) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offsets := map[int32]kgo.Offset{}
	for p, o := range last {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(recoveryTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{recoveryTopic: offsets}),
		kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }),
		kgo.MetadataMinAge(10*time.Millisecond), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.UnknownTopicRetries(-1), kgo.DialTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range last {
		recs = append(recs, &kgo.Record{Partition: p, Value: []byte("ready?")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	seen := map[int32]bool{}
	for len(seen) < len(last) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch: %d of %d partitions answered: %w", len(seen), len(last), err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("fetch partition %d: %w", p, err) })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset == last[r.Partition] {
				seen[r.Partition] = true
			}
		})
	}
	return nil
}

// sizeString is a byte count in GiB, MiB or KiB.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}
