package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// jsTarget is NATS JetStream: an embedded nats-server (this module's
// dependency) with file storage, reached over loopback TCP by nats.go.
type jsTarget struct {
	name       string
	desc       string
	syncAlways bool // server option SyncAlways (config sync_interval: always)
	slow       bool // measured with -slow-records
}

var jsTargets = []jsTarget{
	{name: "jetstream-default", desc: "NATS JetStream, embedded nats-server " + server.VERSION + ", file storage, R1, default sync (fsync every 2 min); in the harness's process, client over loopback TCP"},
	{name: "jetstream-always", desc: "the same with sync always (server option `SyncAlways`, config `sync_interval: always`: fsync after every write)",
		syncAlways: true, slow: true},
}

// jsWorkload is a JetStream workload: one stream, subjects as partitions
// (one subject except for 16x64).
type jsWorkload struct {
	kafkaWorkload
	stream string
}

func jsFor(wl kafkaWorkload) jsWorkload {
	return jsWorkload{kafkaWorkload: wl, stream: "BENCH_" + wl.topic}
}

// perPartition: the 16x64 workload spreads its messages over 64 subjects of
// its stream, round-robin, as the Kafka producers spread them over 64
// partitions; every other workload uses one subject.
func (w jsWorkload) perPartition() bool { return w.name == wProduce16 }

// subject of record i.
func (w jsWorkload) subject(i int64) string {
	if !w.perPartition() {
		return w.topic
	}
	return fmt.Sprintf("%s.%d", w.topic, i%int64(w.partitions))
}

func (w jsWorkload) subjects() []string {
	if !w.perPartition() {
		return []string{w.topic}
	}
	return []string{w.topic + ".*"}
}

func (h *harness) runJetStream(ctx context.Context, t jsTarget) {
	h.logf("== %s: %s", t.name, t.desc)
	dir := filepath.Join(h.dir, t.name)
	defer os.RemoveAll(dir)
	ports, err := h.ports.take(1)
	if err != nil {
		h.fail(t.name, "start", err)
		return
	}
	opts := &server.Options{ServerName: "compare", Host: "127.0.0.1", Port: ports[0], JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, SyncAlways: t.syncAlways}
	srv, err := server.NewServer(opts)
	if err != nil {
		h.fail(t.name, "start", err)
		return
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(30 * time.Second) {
		h.fail(t.name, "start", errors.New("nats-server not ready in 30s"))
		return
	}
	url := srv.ClientURL()
	records := h.o.records
	if t.slow {
		records = h.o.slowRecords
	}
	note := ""
	if t.slow {
		note = "fewer records: slow target"
	}
	produce := func(wl kafkaWorkload) (loadgen.Result, bool) {
		w := jsFor(wl)
		h.logf("  %s %s: %d records of %d B, %d publishers, stream %s subjects %v", t.name, wl.name, records, wl.recordBytes, wl.producers, w.stream, w.subjects())
		cctx, cancel := context.WithTimeout(ctx, h.o.timeout)
		defer cancel()
		r, err := h.jsProduce(cctx, url, w, records, t.name)
		if err != nil {
			h.fail(t.name, wl.name, err)
			return r, false
		}
		h.logf("  %s %s", t.name, r)
		h.record(Run{Target: t.name, Workload: wl.name, Result: &r, Partitions: wl.partitions, Producers: wl.producers, Note: note})
		return r, true
	}
	warm := jsFor(kafkaWorkload{name: "warmup", topic: "warmup", recordBytes: 1024, partitions: 1, producers: 1})
	wctx, cancel := context.WithTimeout(ctx, h.o.timeout)
	_, err = h.jsProduce(wctx, url, warm, min(h.warmupRecords(), records), t.name)
	cancel()
	if err != nil {
		h.fail(t.name, "warm-up", err)
		return
	}
	var peak loadgen.Result
	ok := false
	if h.sel.needsProduce() {
		peak, ok = produce(wlProduce)
	}
	if ok && h.sel.workload(wConsume) && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, h.o.timeout)
		h.logf("  %s consume: ordered consumer, catch-up read of the %d messages", t.name, peak.Records)
		r, err := h.jsConsume(cctx, url, jsFor(wlProduce), peak.Records, t.name)
		cancel()
		if err != nil {
			h.fail(t.name, wConsume, err)
		} else {
			h.logf("  %s %s", t.name, r)
			h.record(Run{Target: t.name, Workload: wConsume, Result: &r, Partitions: 1, Producers: 1, Note: note})
		}
	}
	if ok && h.sel.workload(wE2E) && ctx.Err() == nil {
		rate, n := h.e2eShape(peak)
		cctx, cancel := context.WithTimeout(ctx, h.o.timeout)
		h.logf("  %s e2e: %d records at %.0f records/s (half of produce's %.0f)", t.name, n, rate, peak.RecordsPerSec())
		r, err := h.jsE2E(cctx, url, jsFor(wlE2E), n, rate, t.name)
		cancel()
		if err != nil {
			h.fail(t.name, wE2E, err)
		} else {
			h.logf("  %s %s", t.name, r)
			h.record(Run{Target: t.name, Workload: wE2E, Result: &r, Rate: rate, Partitions: 1, Producers: 1})
		}
	}
	if h.sel.workload(wE2EFixed) && ctx.Err() == nil {
		rate, n := h.e2eFixedShape()
		cctx, cancel := context.WithTimeout(ctx, h.o.timeout)
		h.logf("  %s %s: %d records at %.0f records/s (the same fixed rate for every target)", t.name, wE2EFixed, n, rate)
		r, err := h.jsE2E(cctx, url, jsFor(wlE2E), n, rate, t.name)
		cancel()
		if err != nil {
			h.fail(t.name, wE2EFixed, err)
		} else {
			h.logf("  %s %s", t.name, r)
			h.record(Run{Target: t.name, Workload: wE2EFixed, Result: &r, Rate: rate, Partitions: 1, Producers: 1})
		}
	}
	if h.sel.workload(wProduce100) && ctx.Err() == nil {
		produce(wlProduce100)
	}
	if h.sel.workload(wProduce16) && ctx.Err() == nil {
		produce(wlProduce16)
	}
}

// jsConnect opens a connection and a JetStream context.
func jsConnect(url string, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("fluxo-compare"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ensureStream creates w's stream (file storage, one replica) unless it
// exists.
func ensureStream(ctx context.Context, url string, w jsWorkload) error {
	nc, js, err := jsConnect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: w.stream, Subjects: w.subjects(),
		Storage: jetstream.FileStorage, Replicas: 1})
	return err
}

// jsProduce publishes records with w.producers connections, each with
// async publish and at most -js-window acknowledgements outstanding, then
// waits for every acknowledgement. Latency is from the publish call to the
// acknowledgement's arrival.
func (h *harness) jsProduce(ctx context.Context, url string, w jsWorkload, records int64, target string) (loadgen.Result, error) {
	if err := ensureStream(ctx, url, w); err != nil {
		return loadgen.Result{}, err
	}
	vals := loadgen.NewValues(w.recordBytes)
	var (
		lat     = newSamples(records)
		acked   atomic.Int64
		failed  atomic.Int64
		firstEr atomic.Value
	)
	type pub struct {
		nc   *nats.Conn
		js   jetstream.JetStream
		mu   sync.Mutex
		sent map[*nats.Msg]time.Time
	}
	pubs := make([]*pub, w.producers)
	for i := range pubs {
		p := &pub{sent: make(map[*nats.Msg]time.Time, h.o.jsWindow)}
		var err error
		p.nc, p.js, err = jsConnect(url, jetstream.WithPublishAsyncMaxPending(h.o.jsWindow),
			jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
				now := time.Now()
				p.mu.Lock()
				sent := p.sent[m]
				delete(p.sent, m)
				p.mu.Unlock()
				lat.add(now.Sub(sent))
				acked.Add(1)
			}),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
				p.mu.Lock()
				delete(p.sent, m)
				p.mu.Unlock()
				failed.Add(1)
				firstEr.CompareAndSwap(nil, err)
			}))
		if err != nil {
			return loadgen.Result{}, err
		}
		defer p.nc.Close()
		pubs[i] = p
	}
	stop := h.reportEvery(target, w.name, records, &acked)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for n, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(n); i < records; i += int64(len(pubs)) {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				m := &nats.Msg{Subject: w.subject(i), Data: vals.At(i)}
				p.mu.Lock()
				p.sent[m] = time.Now()
				p.mu.Unlock()
				if err := publishAsync(ctx, p.js, m); err != nil {
					errs <- err
					return
				}
			}
			select {
			case <-p.js.PublishAsyncComplete():
			case <-ctx.Done():
				errs <- ctx.Err()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	close(errs)
	if err := <-errs; err != nil {
		return loadgen.Result{}, fmt.Errorf("publish: %d of %d acknowledged: %w", acked.Load(), records, err)
	}
	if f := failed.Load(); f > 0 {
		return loadgen.Result{}, fmt.Errorf("publish: %d of %d messages failed, first: %v", f, records, firstEr.Load())
	}
	return loadgen.Result{Workload: "produce", Records: records, RecordBytes: w.recordBytes, Bytes: records * int64(w.recordBytes),
		Elapsed: elapsed, Latency: lat.percentiles()}, nil
}

// publishAsync publishes m, waiting while the window is full (the client
// gives up on a stall after 200 ms; a slow server is no failure here).
func publishAsync(ctx context.Context, js jetstream.JetStream, m *nats.Msg) error {
	for {
		_, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Second))
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// jsConsume reads records messages from the start of w's stream with an
// ordered consumer (the client's own catch-up reader: ephemeral, no acks,
// flow-controlled pulls), with the client's default pull settings.
func (h *harness) jsConsume(ctx context.Context, url string, w jsWorkload, records int64, target string) (loadgen.Result, error) {
	nc, js, err := jsConnect(url)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer nc.Close()
	var got, bytes atomic.Int64
	done := make(chan struct{})
	stop := h.reportEvery(target, "consume", records, &got)
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		stop()
		return loadgen.Result{}, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		bytes.Add(int64(len(m.Data())))
		if got.Add(1) == records {
			close(done)
		}
	})
	if err != nil {
		stop()
		return loadgen.Result{}, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		stop()
		return loadgen.Result{}, fmt.Errorf("consume: read %d of %d: %w", got.Load(), records, ctx.Err())
	}
	elapsed := time.Since(start)
	stop()
	return loadgen.Result{Workload: "consume", Records: records, RecordBytes: w.recordBytes, Bytes: bytes.Load(), Elapsed: elapsed}, nil
}

// jsE2E publishes records at rate (async publish) while an ordered consumer
// started at the stream's end reads them; latency is from just before the
// publish to the consumer's handler (the send time travels in the first 8
// bytes; one process, one clock).
func (h *harness) jsE2E(ctx context.Context, url string, w jsWorkload, records int64, rate float64, target string) (loadgen.Result, error) {
	if err := ensureStream(ctx, url, w); err != nil {
		return loadgen.Result{}, err
	}
	cnc, cjs, err := jsConnect(url)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer cnc.Close()
	lat := newSamples(records)
	var got atomic.Int64
	done := make(chan struct{})
	cons, err := cjs.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return loadgen.Result{}, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now().UnixNano()
		if d := m.Data(); len(d) >= 8 {
			lat.add(time.Duration(now - int64(binary.LittleEndian.Uint64(d))))
		}
		if got.Add(1) == records {
			close(done)
		}
	})
	if err != nil {
		return loadgen.Result{}, err
	}
	defer cc.Stop()

	var failed atomic.Int64
	var firstEr atomic.Value
	pnc, pjs, err := jsConnect(url, jetstream.WithPublishAsyncMaxPending(h.o.jsWindow),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstEr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		return loadgen.Result{}, err
	}
	defer pnc.Close()
	vals := loadgen.NewValues(w.recordBytes)
	stop := h.reportEvery(target, "e2e", records, &got)
	start := time.Now()
	for i := range records {
		if due := start.Add(time.Duration(float64(i) / rate * 1e9)); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		if ctx.Err() != nil {
			break
		}
		v := make([]byte, w.recordBytes)
		copy(v[8:], vals.At(i)[8:])
		binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		if err := publishAsync(ctx, pjs, &nats.Msg{Subject: w.subject(i), Data: v}); err != nil {
			stop()
			return loadgen.Result{}, err
		}
	}
	// A failed publish would leave the consumer waiting for ever: check
	// every acknowledgement first.
	select {
	case <-pjs.PublishAsyncComplete():
	case <-ctx.Done():
	}
	if f := failed.Load(); f > 0 {
		stop()
		return loadgen.Result{}, fmt.Errorf("e2e: %d of %d messages failed, first: %v", f, records, firstEr.Load())
	}
	select {
	case <-done:
	case <-ctx.Done():
		stop()
		return loadgen.Result{}, fmt.Errorf("e2e: read %d of %d: %w", got.Load(), records, ctx.Err())
	}
	elapsed := time.Since(start)
	stop()
	return loadgen.Result{Workload: "e2e", Records: records, RecordBytes: w.recordBytes, Bytes: records * int64(w.recordBytes),
		Elapsed: elapsed, Latency: lat.percentiles()}, nil
}

// reportEvery prints progress every 5 seconds until the returned stop.
func (h *harness) reportEvery(target, workload string, total int64, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				h.logf("    %s %s: %d of %d records, %v", target, workload, done.Load(), total, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// samples collects latencies from several goroutines.
type samples struct {
	mu sync.Mutex
	ns []int64
}

func newSamples(n int64) *samples { return &samples{ns: make([]int64, 0, n)} }

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.ns = append(s.ns, int64(d))
	s.mu.Unlock()
}

func (s *samples) percentiles() loadgen.Percentiles {
	s.mu.Lock()
	defer s.mu.Unlock()
	return loadgen.PercentilesOf(s.ns)
}
