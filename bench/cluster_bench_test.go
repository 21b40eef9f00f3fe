package bench

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/testkit"
)

const (
	clusterTopic      = "cluster"
	clusterPartitions = 3 // one leader per broker when spread evenly
)

// clusterInflight bounds the records produced and not yet acknowledged
// (8192, near franz-go's own 10,000 buffered records; FLUXO_BENCH_INFLIGHT
// overrides it): with a bound, throughput is in-flight bytes over the
// acknowledgement latency.
var clusterInflight = func() int {
	if n, err := strconv.Atoi(os.Getenv("FLUXO_BENCH_INFLIGHT")); err == nil && n > 0 {
		return n
	}
	return 8192
}()

// randomPool is 16 MiB of incompressible bytes (plus a record's slack):
// record i's value is its own 1 KiB slice of it, so snappy cannot shrink
// the traffic.
var randomPool = sync.OnceValue(func() []byte {
	const pool = 16 << 20
	rnd := make([]byte, pool+recordBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(rng.Uint32())
	}
	return rnd
})

func recordValue(i int) []byte {
	pool := randomPool()
	off := (i * recordBytes) % (len(pool) - recordBytes)
	return pool[off : off+recordBytes]
}

// produceLatency writes n 1 KiB records with cl (async, at most inflight
// unacknowledged) and returns how long until every acknowledgement and each
// record's latency (from its Produce call to its promise).
func produceLatency(b *testing.B, cl *kgo.Client, n, inflight int) (time.Duration, []time.Duration) {
	lat := make([]time.Duration, n)
	sem := make(chan struct{}, inflight)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := range n {
		sem <- struct{}{}
		at := time.Now()
		cl.Produce(context.Background(), &kgo.Record{Value: recordValue(i)}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(at)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d records failed, first: %v", f, n, firstErr.Load())
	}
	return elapsed, lat
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// leadership reads a partition's recorded leadership from the first
// running broker that knows it.
func leadership(c *testkit.Cluster, topic string, p int32) (actors.Leadership, bool) {
	for i := range c.Size() {
		if br := c.Broker(i); br != nil {
			if l, ok := br.Node().PartitionLeadership(topic, p); ok {
				return l, true
			}
		}
	}
	return actors.Leadership{}, false
}

// waitISR waits until every running broker records a live leader and an
// ISR of want for each of the topic's partitions.
func waitISR(b *testing.B, c *testkit.Cluster, topic string, parts int32, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for i := range c.Size() {
			br := c.Broker(i)
			if br == nil {
				continue
			}
			for p := range parts {
				l, found := br.Node().PartitionLeadership(topic, p)
				if !found || l.Leader < 0 || len(l.ISR) != want {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for p := range parts {
				l, _ := leadership(c, topic, p)
				b.Logf("%s-%d: %+v", topic, p, l)
			}
			b.Fatalf("%s: ISR not %d after %v", topic, want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createTopic(b *testing.B, seeds []string, name string, parts int32, rf int16) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateTopic(ctx, parts, rf, nil, name)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		b.Fatalf("create %s: %v", name, err)
	}
}

// BenchmarkClusterProduce compares one broker with a 3-broker cluster on
// the same workload: b.N 1 KiB incompressible records, a franz-go producer
// with its defaults (idempotent, acks=all, batching and linger), a
// 3-partition topic (replication factor 3 in the cluster, so each broker
// leads one partition and follows two), at most clusterInflight records
// unacknowledged. Each target is started once per benchmark run and kept
// across b.N rounds; the single broker fsyncs before acknowledging, as
// every cluster broker does (followers fsync before fetching again).
func BenchmarkClusterProduce(b *testing.B) {
	top := b
	var singleAddr string
	var cluster *testkit.Cluster
	var singleMBs float64 // from the latest single run, for the ratio

	run := func(b *testing.B, seeds []string) float64 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(clusterTopic),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(1<<20))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		produceLatency(b, cl, 3*clusterInflight, clusterInflight) // connections, metadata, warm caches
		b.SetBytes(recordBytes)
		b.ResetTimer()
		elapsed, lat := produceLatency(b, cl, b.N, clusterInflight)
		b.StopTimer()
		slices.Sort(lat)
		mbs := float64(b.N) * recordBytes / 1e6 / elapsed.Seconds()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
		b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
		return mbs
	}

	b.Run("single", func(b *testing.B) {
		if singleAddr == "" {
			br, err := fluxo.Start(context.Background(), fluxo.WithDataDir(top.TempDir()),
				fluxo.WithLogger(testkit.QuietLogger()), fluxo.WithKafkaListen("127.0.0.1:0", ""))
			if err != nil {
				b.Fatal(err)
			}
			top.Cleanup(func() { br.Close() })
			singleAddr = br.KafkaAddr()
			createTopic(b, []string{singleAddr}, clusterTopic, clusterPartitions, 1)
		}
		singleMBs = run(b, []string{singleAddr})
	})
	b.Run("rf3", func(b *testing.B) {
		if cluster == nil {
			cluster = testkit.StartCluster(top, 3)
			createTopic(b, cluster.Addrs(), clusterTopic, clusterPartitions, 3)
			waitISR(b, cluster, clusterTopic, clusterPartitions, 3, 30*time.Second)
			for p := range int32(clusterPartitions) {
				l, _ := leadership(cluster, clusterTopic, p)
				b.Logf("%s-%d: leader %d epoch %d replicas %v isr %v", clusterTopic, p, l.Leader, l.LeaderEpoch, l.Replicas, l.ISR)
			}
		}
		mbs := run(b, cluster.Addrs())
		if singleMBs > 0 && b.N > 1 {
			b.Logf("N=%d, in flight %d: rf3 %.1f MB/s, single %.1f MB/s: ratio rf3/single %.2f (target >= 0.50)", b.N, clusterInflight, mbs, singleMBs, mbs/singleMBs)
		}
	})
}

// BenchmarkFailover kills the leader of a replicated partition once per
// iteration (run it with -benchtime 10x) on a 3-broker cluster while a
// franz-go producer (acks=all) writes to it continuously, and measures the
// time from the kill until (a) another broker leads and serves the
// partition (WaitLeader) and (b) the producer's first acknowledgement of
// a record produced after the kill. Between kills (untimed) the killed
// broker restarts and the benchmark waits until the ISR is 3 again.
//
// client-defaults is franz-go as configured out of the box: it refreshes
// metadata at most every 5 s (MetadataMinAge), and its first refresh after
// the kill can come before the cluster has noticed the death (2 s of
// heartbeat silence) and still name the dead leader.
// metadata-min-age-250ms lets it ask again sooner.
func BenchmarkFailover(b *testing.B) {
	b.Run("client-defaults", func(b *testing.B) { failover(b) })
	b.Run("metadata-min-age-250ms", func(b *testing.B) { failover(b, kgo.MetadataMinAge(250*time.Millisecond)) })
}

func failover(b *testing.B, opts ...kgo.Opt) {
	const (
		topic    = "failover"
		interval = 2 * time.Millisecond // one record per interval
		inflight = 64
	)
	c := testkit.StartCluster(b, 3)
	createTopic(b, c.Addrs(), topic, 1, 3)
	waitISR(b, c, topic, 1, 3, 30*time.Second)

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()

	// The producer: one record per interval, at most inflight unacknowledged.
	// While armed (armedAt > 0), the first record produced at or after
	// armedAt that is acknowledged reports its acknowledgement time.
	var armedAt atomic.Int64
	acked := make(chan time.Time, 1)
	var produced, ok, failed atomic.Int64
	var lastErr atomic.Value
	var latMu sync.Mutex
	var lat []time.Duration // every acknowledged record's latency
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sem := make(chan struct{}, inflight)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			case <-stop:
				return
			}
			at := time.Now().UnixNano()
			produced.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Value: recordValue(i)}, func(_ *kgo.Record, err error) {
				now := time.Now()
				<-sem
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					return
				}
				ok.Add(1)
				latMu.Lock()
				lat = append(lat, now.Sub(time.Unix(0, at)))
				latMu.Unlock()
				if a := armedAt.Load(); a > 0 && at >= a {
					select {
					case acked <- now:
					default:
					}
				}
			})
		}
	}()
	defer func() { close(stop); <-done }()

	// Wait for the producer's first acknowledgements.
	for deadline := time.Now().Add(30 * time.Second); ok.Load() < 100; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("producer: %d acknowledged, %d failed (%v)", ok.Load(), failed.Load(), lastErr.Load())
		}
	}

	var elect, ack []time.Duration
	kill := 0
	for b.Loop() {
		kill++
		before, _ := leadership(c, topic, 0)
		victim := before.Leader
		ctrl := c.Broker(int(victim)).Node().ControllerID()
		for len(acked) > 0 {
			<-acked
		}
		start := time.Now()
		c.Kill(int(victim))
		armedAt.Store(time.Now().UnixNano())
		nl, err := c.WaitLeader(topic, 0, victim, 30*time.Second)
		if err != nil {
			b.Fatalf("kill %d: %v", kill, err)
		}
		elected := time.Since(start)
		var ackAt time.Time
		select {
		case ackAt = <-acked:
		case <-time.After(60 * time.Second):
			b.Fatalf("kill %d: no acknowledgement 60s after the kill (%d failed, last: %v)", kill, failed.Load(), lastErr.Load())
		}
		armedAt.Store(0)
		firstAck := ackAt.Sub(start)
		elect = append(elect, elected)
		ack = append(ack, firstAck)
		after, _ := leadership(c, topic, 0)

		b.StopTimer()
		restart := time.Now()
		c.Restart(int(victim))
		c.WaitAlive(3, 30*time.Second)
		waitISR(b, c, topic, 1, 3, 60*time.Second)
		synced, _ := leadership(c, topic, 0)
		b.Logf("kill %2d: leader %d epoch %d isr %v killed (controller %d); leader %d (served by %d) epoch %d isr %v; elected %v, first ack %v; back in ISR %v after restart: leader %d epoch %d isr %v",
			kill, before.Leader, before.LeaderEpoch, before.ISR, ctrl, after.Leader, nl, after.LeaderEpoch, after.ISR,
			elected.Round(time.Millisecond), firstAck.Round(time.Millisecond), time.Since(restart).Round(time.Millisecond),
			synced.Leader, synced.LeaderEpoch, synced.ISR)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(elect)
	slices.Sort(ack)
	med := func(d []time.Duration) time.Duration {
		if len(d)%2 == 1 {
			return d[len(d)/2]
		}
		return (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	b.ReportMetric(ms(med(elect)), "elect-median-ms")
	b.ReportMetric(ms(elect[len(elect)-1]), "elect-max-ms")
	b.ReportMetric(ms(med(ack)), "ack-median-ms")
	b.ReportMetric(ms(ack[len(ack)-1]), "ack-max-ms")
	latMu.Lock()
	slices.Sort(lat)
	b.Logf("producer latency over the run (failovers included): p50 %v p99 %v", percentile(lat, 0.5), percentile(lat, 0.99))
	latMu.Unlock()
	b.Logf("%d kills: elect median %v max %v; first ack median %v max %v (targets: median < 3s, max < 10s); producer: %d produced, %d acknowledged, %d failed (last: %v)",
		len(elect), med(elect).Round(time.Millisecond), elect[len(elect)-1].Round(time.Millisecond),
		med(ack).Round(time.Millisecond), ack[len(ack)-1].Round(time.Millisecond),
		produced.Load(), ok.Load(), failed.Load(), lastErr.Load())
}
