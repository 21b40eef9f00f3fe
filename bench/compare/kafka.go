package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/bench"
	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// kafkaTarget is a Kafka broker to measure.
type kafkaTarget struct {
	name  string
	desc  string // for the targets table
	start func(ctx context.Context, h *harness, dir string) (broker, error)
	rf    int16 // replication factor of created topics (0: the broker's default)
	fetch bool  // serves Fetch (consume and e2e); the null broker does not
}

// broker is a started Kafka target.
type broker interface {
	// prepare makes topic exist with partitions partitions, each with a
	// leader (and rf in-sync replicas), and returns the address to use.
	prepare(ctx context.Context, topic string, partitions int32, rf int16) (string, error)
	stop()
}

var kafkaTargets = []kafkaTarget{
	{name: "fluxo-fsync", desc: "Fluxo, 1 node, fsync before acknowledging (the default); in the harness's process (`fluxo.Start`)",
		start: startFluxoInProcess(true), fetch: true},
	{name: "fluxo-nosync", desc: "Fluxo, 1 node, no fsync (`WithoutFsync`, `--sync never`); in the harness's process",
		start: startFluxoInProcess(false), fetch: true},
	{name: "fluxo-rf3", desc: "Fluxo, 3 brokers, RF=3, min.insync.replicas 2, acks=all, fsync (default); three `fluxo serve` child processes on loopback",
		start: startFluxoRF3, rf: 3, fetch: true},
	{name: "kfake-memory", desc: "franz-go's kfake, 1 broker, in memory; in the harness's process",
		start: startKfake(false), fetch: true},
	{name: "kfake-fsync", desc: "franz-go's kfake, 1 broker, `DataDir` + `SyncWrites` (fsync per batch); in the harness's process",
		start: startKfake(true), fetch: true},
	{name: "null", desc: "the ceiling: `bench/nullbroker.go` acknowledges every batch and stores nothing (produce only); in the harness's process",
		start: startNull},
}

// simple is a broker at one address whose topics are created through Kafka.
type simple struct {
	addr    string
	closeFn func()
}

func (s *simple) prepare(ctx context.Context, topic string, partitions int32, rf int16) (string, error) {
	return s.addr, prepareTopic(ctx, s.addr, topic, partitions, rf)
}

func (s *simple) stop() { s.closeFn() }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startFluxoInProcess(fsync bool) func(context.Context, *harness, string) (broker, error) {
	return func(ctx context.Context, h *harness, dir string) (broker, error) {
		opts := []fluxo.Option{fluxo.WithDataDir(dir), fluxo.WithLogger(quiet()), fluxo.WithKafkaListen("127.0.0.1:0", "")}
		if !fsync {
			opts = append(opts, fluxo.WithoutFsync())
		}
		b, err := fluxo.Start(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return &simple{addr: b.KafkaAddr(), closeFn: func() { b.Close() }}, nil
	}
}

func startKfake(fsync bool) func(context.Context, *harness, string) (broker, error) {
	return func(_ context.Context, _ *harness, dir string) (broker, error) {
		opts := []kfake.Opt{kfake.NumBrokers(1)}
		if fsync {
			opts = append(opts, kfake.DataDir(dir), kfake.SyncWrites())
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			return nil, err
		}
		return &simple{addr: c.ListenAddrs()[0], closeFn: c.Close}, nil
	}
}

// nullTarget starts a null broker per topic: it serves one fixed topic.
type nullTarget struct{ cur *bench.NullBroker }

func startNull(context.Context, *harness, string) (broker, error) { return &nullTarget{}, nil }

func (n *nullTarget) prepare(_ context.Context, topic string, partitions int32, _ int16) (string, error) {
	n.stop()
	nb, err := bench.StartNullBroker("127.0.0.1:0", topic, partitions)
	if err != nil {
		return "", err
	}
	n.cur = nb
	return nb.Addr(), nil
}

func (n *nullTarget) stop() {
	if n.cur != nil {
		n.cur.Close()
		n.cur = nil
	}
}

// rf3 is three `fluxo serve` child processes forming a cluster.
type rf3 struct {
	h     *harness
	nodes []*child
	addrs []string
}

func startFluxoRF3(ctx context.Context, h *harness, dir string) (broker, error) {
	ports, err := h.ports.take(9)
	if err != nil {
		return nil, err
	}
	var peers []string
	for i := range 3 {
		peers = append(peers, loopback(ports[3+i]))
	}
	c := &rf3{h: h}
	for i := range 3 {
		kafka, remote := loopback(ports[i]), loopback(ports[6+i])
		data := filepath.Join(dir, fmt.Sprintf("n%d", i))
		ch, err := h.startServe(ctx, fmt.Sprintf("fluxo-rf3 broker %d", i), filepath.Join(h.dir, fmt.Sprintf("fluxo-rf3-n%d.log", i)),
			"--node-id", fmt.Sprint(i), "--data-dir", data, "--listen", kafka, "--remote-listen", remote,
			"--metrics-listen", "", "--cluster-listen", peers[i], "--peers", strings.Join(peers, ","),
			"--log-format", "text")
		if err != nil {
			c.stop()
			return nil, err
		}
		h.logf("  broker %d: pid %d, Kafka %s", i, ch.pid(), kafka)
		c.nodes, c.addrs = append(c.nodes, ch), append(c.addrs, kafka)
	}
	// Up when every broker answers Metadata naming all three and a controller.
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, addr := range c.addrs {
		if err := c.waitBrokers(ctx2, addr); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *rf3) waitBrokers(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	var brokers, controller int32 = 0, -1
	for {
		for _, n := range c.nodes {
			if err := n.running(); err != nil {
				return err
			}
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		md, err := metadata(actx, cl)
		cancel()
		if err == nil {
			brokers, controller = int32(len(md.Brokers)), md.ControllerID
			if brokers == 3 && controller >= 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("cluster not formed at %s: %v (last metadata: %d brokers, controller %d, error %v)",
				addr, ctx.Err(), brokers, controller, err)
			for _, n := range c.nodes {
				msg += fmt.Sprintf("\n%s log %s:\n%s", n.name, n.logPath, tail(n.logPath, 8))
			}
			return errors.New(msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metadata asks a broker directly: kadm answers from the client's cache,
// which can keep a stale broker list or partition state for seconds.
func metadata(ctx context.Context, cl *kgo.Client, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	return req.RequestWith(ctx, cl)
}

func (c *rf3) prepare(ctx context.Context, topic string, partitions int32, rf int16) (string, error) {
	for _, n := range c.nodes {
		if err := n.running(); err != nil {
			return "", err
		}
	}
	return strings.Join(c.addrs, ","), prepareTopic(ctx, strings.Join(c.addrs, ","), topic, partitions, rf)
}

func (c *rf3) stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.stop(30 * time.Second); err != nil {
				c.h.logf("compare: %v", err)
			}
		}()
	}
	wg.Wait()
}

// prepareTopic creates topic (unless it exists) and waits until every
// partition has a leader and, for rf > 1, rf in-sync replicas, so no
// measurement includes topic creation or leader election.
func prepareTopic(ctx context.Context, addrs, topic string, partitions int32, rf int16) error {
	seeds := strings.Split(addrs, ",")
	if err := loadgen.EnsureTopic(ctx, loadgen.Config{Brokers: seeds, Topic: topic, Partitions: partitions, Replication: rf}); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		md, err := metadata(ctx, cl, topic)
		if err == nil {
			last = topicReady(md, topic, partitions, rf)
			if last == "" {
				// Metadata can name a leader before that broker serves
				// the partition (in a cluster it learns its leadership
				// from the coordination store): ask every leader.
				if last = leadersServe(ctx, seeds, topic); last == "" {
					return nil
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %s", topic, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leadersServe is "" when every partition's leader answers ListOffsets
// for it, else the first error (a fresh client: no cached leaders).
func leadersServe(ctx context.Context, seeds []string, topic string) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return "end offsets: " + err.Error()
	}
	return ""
}

// topicReady is "" when every partition has a leader and enough in-sync
// replicas, else what is missing.
func topicReady(md *kmsg.MetadataResponse, topic string, partitions int32, rf int16) string {
	for _, t := range md.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return fmt.Sprintf("topic %s: %v", topic, err)
		}
		if int32(len(t.Partitions)) < partitions {
			return fmt.Sprintf("%d of %d partitions", len(t.Partitions), partitions)
		}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil || p.Leader < 0 {
				return fmt.Sprintf("partition %d: leader %d, %v", p.Partition, p.Leader, err)
			}
			if rf > 1 && len(p.ISR) < int(rf) {
				return fmt.Sprintf("partition %d: ISR %v", p.Partition, p.ISR)
			}
		}
		return ""
	}
	return "topic " + topic + " not in the metadata"
}

// kafkaWorkload is one throughput workload's shape.
type kafkaWorkload struct {
	name        string
	topic       string
	recordBytes int
	partitions  int32
	producers   int
}

var (
	wlProduce    = kafkaWorkload{wProduce, "p1k", 1024, 4, 1}
	wlProduce100 = kafkaWorkload{wProduce100, "p100", 100, 4, 1}
	wlProduce16  = kafkaWorkload{wProduce16, "p16x64", 1024, 64, 16}
	wlE2E        = kafkaWorkload{wE2E, "e2e", 1024, 4, 1}
)

// runKafka measures one Kafka target: start, every selected workload, stop.
func (h *harness) runKafka(ctx context.Context, t kafkaTarget) {
	h.logf("== %s: %s", t.name, t.desc)
	dir := filepath.Join(h.dir, t.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.fail(t.name, "start", err)
		return
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	start := time.Now()
	b, err := t.start(sctx, h, dir)
	cancel()
	if err != nil {
		h.fail(t.name, "start", err)
		return
	}
	h.logf("  started in %v", time.Since(start).Round(time.Millisecond))
	defer b.stop()

	produce := func(wl kafkaWorkload) (loadgen.Result, bool) {
		r, err := h.kafkaProduce(ctx, t, b, wl)
		if err != nil {
			h.fail(t.name, wl.name, err)
			return r, false
		}
		h.record(Run{Target: t.name, Workload: wl.name, Result: &r, Partitions: wl.partitions, Producers: wl.producers})
		return r, true
	}
	if err := h.kafkaWarmup(ctx, t, b); err != nil {
		h.fail(t.name, "warm-up", err)
		return
	}
	var peak loadgen.Result
	ok := false
	if h.sel.needsProduce() {
		peak, ok = produce(wlProduce)
	}
	if ok && t.fetch && h.sel.workload(wConsume) && ctx.Err() == nil {
		h.kafkaConsume(ctx, t, b, peak)
	}
	if ok && t.fetch && h.sel.workload(wE2E) && ctx.Err() == nil {
		h.kafkaE2E(ctx, t, b, peak)
	}
	if t.fetch && h.sel.workload(wE2EFixed) && ctx.Err() == nil {
		rate, records := h.e2eFixedShape()
		h.kafkaE2EAt(ctx, t, b, wE2EFixed, rate, records, "the same fixed rate for every target")
	}
	if h.sel.workload(wProduce100) && ctx.Err() == nil {
		produce(wlProduce100)
	}
	if h.sel.workload(wProduce16) && ctx.Err() == nil {
		produce(wlProduce16)
	}
}

// progress prints a workload's progress every 5 seconds.
func (h *harness) progress(target string) func(loadgen.Progress) {
	var last time.Duration
	return func(p loadgen.Progress) {
		if p.Elapsed-last < 5*time.Second || p.Done >= p.Total {
			return
		}
		last = p.Elapsed
		h.logf("    %s %s: %d of %d records, %v", target, p.Workload, p.Done, p.Total, p.Elapsed.Round(time.Second))
	}
}

// warmupRecords is the untimed produce every target gets first, so no
// measurement pays a cold start (first segment, connections, page faults):
// a tenth of -records, at most 10,000.
func (h *harness) warmupRecords() int64 { return min(max(h.o.records/10, 100), 10_000) }

func (h *harness) kafkaWarmup(ctx context.Context, t kafkaTarget, b broker) error {
	ctx, cancel := context.WithTimeout(ctx, h.o.timeout)
	defer cancel()
	addr, err := b.prepare(ctx, "warmup", wlProduce.partitions, t.rf)
	if err != nil {
		return err
	}
	_, err = loadgen.Produce(ctx, loadgen.Config{Brokers: strings.Split(addr, ","), Topic: "warmup", Records: h.warmupRecords(),
		RecordBytes: wlProduce.recordBytes, Partitions: wlProduce.partitions, Replication: t.rf})
	return err
}

func (h *harness) kafkaProduce(ctx context.Context, t kafkaTarget, b broker, wl kafkaWorkload) (loadgen.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.timeout)
	defer cancel()
	addr, err := b.prepare(ctx, wl.topic, wl.partitions, t.rf)
	if err != nil {
		return loadgen.Result{}, err
	}
	h.logf("  %s %s: %d records of %d B, %d partitions, %d producers", t.name, wl.name, h.o.records, wl.recordBytes, wl.partitions, wl.producers)
	r, err := loadgen.Produce(ctx, loadgen.Config{Brokers: strings.Split(addr, ","), Topic: wl.topic, Records: h.o.records,
		RecordBytes: wl.recordBytes, Partitions: wl.partitions, Replication: t.rf, Producers: wl.producers, Progress: h.progress(t.name)})
	if err != nil {
		return r, err
	}
	h.logf("  %s %s", t.name, r)
	return r, nil
}

func (h *harness) kafkaConsume(ctx context.Context, t kafkaTarget, b broker, produced loadgen.Result) {
	ctx, cancel := context.WithTimeout(ctx, h.o.timeout)
	defer cancel()
	addr, err := b.prepare(ctx, wlProduce.topic, wlProduce.partitions, t.rf)
	if err != nil {
		h.fail(t.name, wConsume, err)
		return
	}
	h.logf("  %s consume: catch-up read of the %d records produced", t.name, produced.Records)
	r, err := loadgen.Consume(ctx, loadgen.Config{Brokers: strings.Split(addr, ","), Topic: wlProduce.topic, Records: produced.Records,
		RecordBytes: wlProduce.recordBytes, Progress: h.progress(t.name)})
	if err != nil {
		h.fail(t.name, wConsume, err)
		return
	}
	h.logf("  %s %s", t.name, r)
	h.record(Run{Target: t.name, Workload: wConsume, Result: &r, Partitions: wlProduce.partitions, Producers: 1})
}

// e2eShape is the rate (half of the produce peak) and record count of an
// end-to-end run.
func (h *harness) e2eShape(peak loadgen.Result) (rate float64, records int64) {
	rate = peak.RecordsPerSec() / 2
	records = int64(rate * h.o.e2eDuration.Seconds())
	return rate, min(max(records, 200), h.o.e2eMax)
}

func (h *harness) kafkaE2E(ctx context.Context, t kafkaTarget, b broker, peak loadgen.Result) {
	rate, records := h.e2eShape(peak)
	if rate <= 0 {
		h.fail(t.name, wE2E, errors.New("no produce rate to take half of"))
		return
	}
	h.kafkaE2EAt(ctx, t, b, wE2E, rate, records, fmt.Sprintf("half of produce's %.0f", peak.RecordsPerSec()))
}

// kafkaE2EAt runs an end-to-end latency workload at rate.
func (h *harness) kafkaE2EAt(ctx context.Context, t kafkaTarget, b broker, workload string, rate float64, records int64, why string) {
	ctx, cancel := context.WithTimeout(ctx, h.o.timeout)
	defer cancel()
	addr, err := b.prepare(ctx, wlE2E.topic, wlE2E.partitions, t.rf)
	if err != nil {
		h.fail(t.name, workload, err)
		return
	}
	h.logf("  %s %s: %d records at %.0f records/s (%s)", t.name, workload, records, rate, why)
	r, err := loadgen.E2E(ctx, loadgen.Config{Brokers: strings.Split(addr, ","), Topic: wlE2E.topic, Records: records,
		RecordBytes: wlE2E.recordBytes, Partitions: wlE2E.partitions, Replication: t.rf, Rate: rate, Progress: h.progress(t.name)})
	if err != nil {
		h.fail(t.name, workload, err)
		return
	}
	h.logf("  %s %s", t.name, r)
	h.record(Run{Target: t.name, Workload: workload, Result: &r, Rate: rate, Partitions: wlE2E.partitions, Producers: 1})
}

// e2eFixedShape is the rate and record count of the fixed-rate end-to-end
// run: the same load for every target, far below any of their peaks.
func (h *harness) e2eFixedShape() (rate float64, records int64) {
	rate = h.o.e2eFixedRate
	return rate, max(int64(rate*h.o.e2eDuration.Seconds()/2), 100)
}
