package testkit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
)

// Cluster is an in-process cluster of brokers on loopback, each with its
// own data directory, NATS server, protoactor remote and Kafka listener,
// with fault controls: kill a broker, restart it, stop it cleanly.
type Cluster struct {
	tb   testing.TB
	opts []fluxo.Option

	mu      sync.Mutex
	brokers []*fluxo.Broker // nil: down
	dirs    []string
	routes  []string // each broker's NATS route address (fixed across restarts)
	remotes []string // protoactor remote addresses (fixed across restarts)
	kafka   []string // Kafka listen addresses (fixed across restarts)
	faults  []*brokerFaults
	disks   []*brokerDisk
	crashFS bool
}

// brokerDisk is one broker's storage under fault injection: a SlowFS over
// the real file system, or over a crashable in-memory one.
type brokerDisk struct {
	crash *CrashFS // nil: the real file system
	slow  *SlowFS
}

func newBrokerDisk(crashable bool) *brokerDisk {
	if !crashable {
		return &brokerDisk{slow: NewSlowFS(vfs.Default)}
	}
	c := NewCrashFS()
	return &brokerDisk{crash: c, slow: NewSlowFS(c.MemFS)}
}

// ClusterOptions are the fault-injection settings of StartClusterWith.
type ClusterOptions struct {
	// CrashableDisks puts each broker's segments and Pebble on a crashable
	// in-memory file system, so Crash can drop what was not synced (the
	// coordination store stays on the real disk).
	CrashableDisks bool
}

// StartCluster starts n brokers (ids 0..n-1) and waits until every one
// sees all of them alive. Extra options apply to every broker. The cluster
// is closed when the test ends.
func StartCluster(tb testing.TB, n int, opts ...fluxo.Option) *Cluster {
	tb.Helper()
	return StartClusterWith(tb, n, ClusterOptions{}, opts...)
}

// StartClusterWith is StartCluster with fault-injection settings.
func StartClusterWith(tb testing.TB, n int, co ClusterOptions, opts ...fluxo.Option) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, opts: opts, brokers: make([]*fluxo.Broker, n), crashFS: co.CrashableDisks}
	ports := freePorts(tb, 3*n)
	for i := range n {
		c.dirs = append(c.dirs, tb.TempDir())
		c.routes = append(c.routes, ports[3*i])
		c.remotes = append(c.remotes, ports[3*i+1])
		c.kafka = append(c.kafka, ports[3*i+2])
		c.faults = append(c.faults, newBrokerFaults())
		c.disks = append(c.disks, newBrokerDisk(co.CrashableDisks))
	}
	tb.Cleanup(c.Close)
	// The NATS servers wait for each other: start them side by side.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("testkit: start broker %d: %v", i, err)
		}
	}
	c.WaitAlive(n, 30*time.Second)
	return c
}

// freePorts reserves n loopback ports for listeners that must keep a fixed
// address across restarts (NATS routes, remotes, Kafka ports). They are
// taken below the kernel's ephemeral range: a port from listen(":0") is in
// that range, so a broker's outgoing connection could take it as its local
// port while the listener is down (a restart) or not yet bound, and the
// broker would fail with "address already in use".
func freePorts(tb testing.TB, n int) []string {
	tb.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		p, err := reservePort()
		if err != nil {
			tb.Fatalf("testkit: reserve port: %v", err)
		}
		out = append(out, p)
	}
	return out
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{} // handed out in this process, never again
)

// reservePort returns a loopback port outside the ephemeral range that
// binds now and was not handed out before in this process.
func reservePort() (string, error) {
	lo, hi := fixedPortRange()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		if portsUsed[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return addr, nil
	}
	return "", errors.New("no free loopback port below the ephemeral range")
}

// fixedPortRange is [10000, start of the ephemeral range), or a range
// below the usual defaults where the kernel's setting cannot be read.
func fixedPortRange() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil && start > lo+1000 {
			hi = start
		}
	}
	return lo, hi
}

func (c *Cluster) start(i int) error {
	var peers []string
	c.mu.Lock()
	for j, r := range c.routes {
		if j != i {
			peers = append(peers, r)
		}
	}
	dir, route, remote, kafka, faults, disk := c.dirs[i], c.routes[i], c.remotes[i], c.kafka[i], c.faults[i], c.disks[i]
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]fluxo.Option{
		fluxo.WithDataDir(dir),
		fluxo.WithLogger(QuietLogger()),
		fluxo.WithCluster(int32(i), route, peers),
		fluxo.WithRemoteListen(remote),
		fluxo.WithKafkaListen(kafka, ""),
		fluxo.WithActorMiddleware(faults.middleware),
		fluxo.WithFS(disk.slow),
	}, c.opts...)
	if disk.crash != nil {
		// Small segments: an in-memory disk holds every preallocated byte.
		all = append(all, fluxo.WithNodeConfig(func(cfg *actors.Config) { cfg.SegmentBytes = 4 << 20 }))
	}
	b, err := fluxo.Start(ctx, all...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.brokers[i] = b
	c.mu.Unlock()
	return nil
}

// Broker returns broker i, or nil while it is down.
func (c *Cluster) Broker(i int) *fluxo.Broker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.brokers[i]
}

// Size is the number of brokers, up or down.
func (c *Cluster) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dirs)
}

// Addrs lists the Kafka addresses of the brokers that are up.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, b := range c.brokers {
		if b != nil {
			out = append(out, c.kafka[i])
		}
	}
	return out
}

// SeedBrokers is Addrs joined with commas (for kgo.SeedBrokers, split).
func (c *Cluster) SeedBrokers() string { return strings.Join(c.Addrs(), ",") }

// Kill stops broker i abruptly (no controlled shutdown): the others find
// out from its silence, as after kill -9.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	b := c.brokers[i]
	c.brokers[i] = nil
	c.mu.Unlock()
	if b != nil {
		c.mu.Lock()
		f := c.faults[i]
		c.mu.Unlock()
		f.isolated.Store(false)
		f.resumeAll() // a paused actor must not block the stop
		_ = b.Kill()
	}
}

// Stop stops broker i cleanly: its leaderships move first.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	b := c.brokers[i]
	c.brokers[i] = nil
	c.mu.Unlock()
	if b != nil {
		_ = b.Close()
	}
}

// Crash stops broker i as a power cut would: its disk keeps only what was
// synced (the cluster needs CrashableDisks), and the broker stops abruptly.
// Restart brings it back on what survived.
func (c *Cluster) Crash(i int) {
	c.tb.Helper()
	c.mu.Lock()
	d := c.disks[i]
	c.mu.Unlock()
	if d.crash == nil {
		c.tb.Fatalf("testkit: crash broker %d: the cluster has no crashable disks", i)
	}
	survived := d.crash.Crash() // before the stop, which syncs everything
	c.Kill(i)
	c.mu.Lock()
	c.disks[i] = &brokerDisk{crash: survived, slow: NewSlowFS(survived.MemFS)}
	c.mu.Unlock()
}

// SlowDisk delays every sync of broker i's storage by d (0: full speed).
func (c *Cluster) SlowDisk(i int, d time.Duration) {
	c.mu.Lock()
	disk := c.disks[i]
	c.mu.Unlock()
	disk.slow.SetSyncDelay(d)
}

// Isolate cuts broker i off from the others: it cannot reach the
// coordination store (no heartbeats sent or heard, no reads, writes or
// watch deliveries) and its replication traffic is dropped both ways. Kafka
// clients still reach it, so a leader isolated this way is a zombie: it
// believes it leads until, hearing no majority for the liveness window, it
// fences itself (NOT_LEADER_OR_FOLLOWER to clients). Heal ends it.
func (c *Cluster) Isolate(i int) {
	c.faults[i].isolated.Store(true)
	if b := c.Broker(i); b != nil {
		b.SetIsolated(true)
	}
}

// StoreLeader is the broker whose NATS server leads the coordination store's
// Raft group, as the first running broker sees it (-1: none or unknown). A
// kill of that broker stalls every store write for the stream's election
// (5-7 s) before any partition can get a new leader.
func (c *Cluster) StoreLeader() int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i := range c.Size() {
		if b := c.Broker(i); b != nil {
			if id, ok := b.StoreLeader(ctx); ok {
				return id
			}
		}
	}
	return -1
}

// Heal reconnects broker i.
func (c *Cluster) Heal(i int) {
	if b := c.Broker(i); b != nil {
		b.SetIsolated(false)
	}
	c.faults[i].isolated.Store(false)
}

// PausePartition holds every message to broker i's actor of topic's
// partition p (its mailbox fills) until ResumePartition: a stalled actor,
// e.g. a leader that wakes later with stale beliefs.
func (c *Cluster) PausePartition(i int, topic string, p int32) {
	c.faults[i].pause(fmt.Sprintf("/%s-%d", topic, p))
}

// ResumePartition releases a paused partition actor.
func (c *Cluster) ResumePartition(i int, topic string, p int32) {
	c.faults[i].resume(fmt.Sprintf("/%s-%d", topic, p))
}

// AddBroker starts one more broker (the next id) that joins the running
// cluster through the others' route addresses, and returns its index.
func (c *Cluster) AddBroker() int {
	c.tb.Helper()
	ports := freePorts(c.tb, 3)
	c.mu.Lock()
	i := len(c.dirs)
	c.dirs = append(c.dirs, c.tb.TempDir())
	c.routes = append(c.routes, ports[0])
	c.remotes = append(c.remotes, ports[1])
	c.kafka = append(c.kafka, ports[2])
	c.faults = append(c.faults, newBrokerFaults())
	c.disks = append(c.disks, newBrokerDisk(c.crashFS))
	c.brokers = append(c.brokers, nil)
	c.mu.Unlock()
	if err := c.start(i); err != nil {
		c.tb.Fatalf("testkit: add broker %d: %v", i, err)
	}
	return i
}

// RestartAll starts every stopped broker again, side by side (a lone
// broker waits for a majority of the coordination store before it starts).
func (c *Cluster) RestartAll() {
	c.tb.Helper()
	var wg sync.WaitGroup
	errs := make([]error, c.Size())
	for i := range c.Size() {
		if c.Broker(i) != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.tb.Fatalf("testkit: restart broker %d: %v", i, err)
		}
	}
}

// Restart starts broker i again on its data directory and addresses.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	if c.Broker(i) != nil {
		c.tb.Fatalf("testkit: restart broker %d: it is running", i)
	}
	if err := c.start(i); err != nil {
		c.tb.Fatalf("testkit: restart broker %d: %v", i, err)
	}
}

// WaitAlive waits until every running broker sees exactly n live brokers
// (after a kill: until the others have noticed it).
func (c *Cluster) WaitAlive(n int, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		c.mu.Lock()
		for _, b := range c.brokers {
			if b != nil && len(b.Node().LiveBrokers()) != n {
				ok = false
			}
		}
		c.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("testkit: %d brokers not all alive after %v", n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leader returns the broker id leading topic's partition as the first
// running broker sees it (-1: none).
func (c *Cluster) Leader(topic string, p int32) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.brokers {
		if b == nil {
			continue
		}
		if l, ok := b.Node().PartitionLeadership(topic, p); ok {
			return l.Leader
		}
	}
	return -1
}

// WaitLeader waits until a running broker other than not leads the
// partition and serves it as leader, and returns its id.
func (c *Cluster) WaitLeader(topic string, p int32, not int32, timeout time.Duration) (int32, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(topic, p); l >= 0 && l != not {
			if b := c.Broker(int(l)); b != nil {
				if st, ok := b.Node().Partition(topic, p); ok && st.Leader {
					return l, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1, fmt.Errorf("no leader for %s-%d (other than %d) after %v", topic, p, not, timeout)
}

// Close stops every running broker (abruptly: a test's end needs no
// leadership hand-over).
func (c *Cluster) Close() {
	for i := range c.Size() {
		c.Kill(i)
	}
}
