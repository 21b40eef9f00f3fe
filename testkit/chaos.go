package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit/history"
)

// Nemesis is one kind of fault the chaos scheduler injects into a running
// cluster. Inject starts the fault (choosing its victim with rng) and
// returns how to heal it and what it did.
type Nemesis struct {
	Name string
	// Broker: the fault makes a whole broker unavailable (kill, isolate);
	// the scheduler runs at most one of those at a time, so a majority
	// always lives and progress is expected after every heal.
	Broker bool
	Inject func(e *ChaosEnv, rng *rand.Rand) (heal func(), what string)
}

// ChaosEnv is what nemeses act on.
type ChaosEnv struct {
	C      *Cluster
	Panics *PanicInjector
	Topic  string
	Parts  int32
}

// Nemeses returns every nemesis testkit has: broker kill and restart, a
// crash that loses unsynced writes (power cut), a slow disk, isolation (a
// zombie that takes client requests until it fences itself), a paused leader partition
// actor, and panics in a partition actor, the groups supervisor (every
// group actor restarts) and the broker actor (every partition of the
// broker restarts).
func Nemeses() []Nemesis {
	return []Nemesis{
		{Name: "kill-restart", Broker: true, Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			i := rng.IntN(e.C.Size())
			e.C.Kill(i)
			return func() { e.C.Restart(i) }, fmt.Sprintf("kill broker %d", i)
		}},
		{Name: "isolate", Broker: true, Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			i := rng.IntN(e.C.Size())
			e.C.Isolate(i)
			return func() { e.C.Heal(i) }, fmt.Sprintf("isolate broker %d", i)
		}},
		{Name: "crash-unsynced", Broker: true, Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			i := rng.IntN(e.C.Size())
			e.C.Crash(i)
			return func() { e.C.Restart(i) }, fmt.Sprintf("crash broker %d (unsynced writes lost)", i)
		}},
		{Name: "slow-disk", Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			i := rng.IntN(e.C.Size())
			d := time.Duration(5+rng.IntN(46)) * time.Millisecond
			e.C.SlowDisk(i, d)
			return func() { e.C.SlowDisk(i, 0) }, fmt.Sprintf("slow disk on broker %d (+%v per sync)", i, d)
		}},
		{Name: "pause-leader", Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			p := int32(rng.IntN(int(e.Parts)))
			l := e.C.Leader(e.Topic, p)
			if l < 0 || e.C.Broker(int(l)) == nil {
				return func() {}, "pause: no leader"
			}
			e.C.PausePartition(int(l), e.Topic, p)
			return func() { e.C.ResumePartition(int(l), e.Topic, p) }, fmt.Sprintf("pause %s-%d on broker %d", e.Topic, p, l)
		}},
		{Name: "panic-partition", Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			p := int32(rng.IntN(int(e.Parts)))
			e.Panics.Arm(fmt.Sprintf("/%s-%d", e.Topic, p), 1+rng.IntN(3), nil)
			return e.Panics.Disarm, fmt.Sprintf("panics in %s-%d actors", e.Topic, p)
		}},
		{Name: "panic-groups", Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			e.Panics.Arm("", 1, func(msg any) bool { return fmt.Sprintf("%T", msg) == "*actors.groupRequest" })
			return e.Panics.Disarm, "panic in a groups supervisor"
		}},
		{Name: "panic-broker-actor", Inject: func(e *ChaosEnv, rng *rand.Rand) (func(), string) {
			e.Panics.Arm("broker", 1, func(msg any) bool { _, ok := msg.(*fluxopb.ReplicaFetchRequest); return ok })
			return e.Panics.Disarm, "panic in a broker actor"
		}},
	}
}

// ChaosConfig sizes a chaos run. Zero fields take the defaults in comments.
type ChaosConfig struct {
	Seed     uint64        // the schedule's seed: the same seed replays the same choices
	Duration time.Duration // faults are injected for this long (default 1 min)
	Brokers  int           // default 3
	Parts    int32         // partitions of the workload topic (default 3)
	// Quiet is the longest pause between faults (default 3 s) and Hold the
	// longest a fault lasts (default 4 s).
	Quiet, Hold time.Duration
	Nemeses     []Nemesis // default Nemeses()
	Logf        func(format string, args ...any)
}

// ChaosReport is what a run did and what the checker found.
type ChaosReport struct {
	Seed                   uint64
	Elapsed                time.Duration
	Faults                 map[string]int
	Ops                    map[history.Kind]int
	Acked, Failed, Unknown int64
	Check                  history.Report
}

// Failures is the number of checker findings.
func (r ChaosReport) Failures() int { return r.Check.Failures() }

// Table prints the run: seed, faults, operations and each family's count.
func (r ChaosReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %v\n", r.Seed, r.Elapsed.Round(time.Second))
	names := make([]string, 0, len(r.Faults))
	total := 0
	for n, c := range r.Faults {
		names = append(names, n)
		total += c
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "%-22s %d\n", "faults injected", total)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-20s %d\n", n, r.Faults[n])
	}
	ops := 0
	for _, c := range r.Ops {
		ops += c
	}
	fmt.Fprintf(&b, "%-22s %d\n", "operations", ops)
	for _, k := range []history.Kind{history.Send, history.Poll, history.Assign, history.Commit, history.FetchCommit} {
		fmt.Fprintf(&b, "  %-20s %d\n", k, r.Ops[k])
	}
	fmt.Fprintf(&b, "%-22s %d (refused %d, unknown outcome %d)\n", "acked writes", r.Acked, r.Failed, r.Unknown)
	b.WriteString(r.Check.String())
	return b.String()
}

// RunChaos starts a cluster, runs producers, a consumer, a consumer group
// and an offset reader on it, and injects faults on a schedule drawn from
// cfg.Seed: a quiet period, then a random subset of the nemeses (at most
// one broker-level fault at a time), held, then healed; until Duration has
// passed. Then everything is healed, the clients stop, a fresh consumer
// drains every partition and the history is checked.
func RunChaos(tb testing.TB, cfg ChaosConfig) ChaosReport {
	tb.Helper()
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute
	}
	if cfg.Brokers == 0 {
		cfg.Brokers = 3
	}
	if cfg.Parts == 0 {
		cfg.Parts = 3
	}
	if cfg.Quiet == 0 {
		cfg.Quiet = 3 * time.Second
	}
	if cfg.Hold == 0 {
		cfg.Hold = 4 * time.Second
	}
	if cfg.Nemeses == nil {
		cfg.Nemeses = Nemeses()
	}
	logf := cfg.Logf
	if logf == nil {
		logf = tb.Logf
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	panics := &PanicInjector{}
	c := StartClusterWith(tb, cfg.Brokers, ClusterOptions{CrashableDisks: true}, fluxo.WithActorMiddleware(panics.Middleware))
	env := &ChaosEnv{C: c, Panics: panics, Topic: "chaos", Parts: cfg.Parts}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration+5*time.Minute)
	defer cancel()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, cfg.Parts, int16(min(3, cfg.Brokers)), nil, env.Topic); err != nil {
		tb.Fatalf("chaos: create topic: %v", err)
	}
	admCl.Close()

	h := history.New()
	w := &Workload{Topic: env.Topic, Partitions: cfg.Parts, Seeds: c.Addrs, H: h}
	g := &GroupWorkload{Topic: env.Topic, Group: "chaos-group", FirstProcess: 10, Seeds: c.Addrs, H: h}
	if err := w.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		tb.Fatal(err)
	}

	start := time.Now()
	faults := map[string]int{}
	for time.Since(start) < cfg.Duration {
		time.Sleep(cfg.Quiet/2 + time.Duration(rng.Int64N(int64(cfg.Quiet/2)+1)))
		picks := rng.Perm(len(cfg.Nemeses))[:1+rng.IntN(min(2, len(cfg.Nemeses)))]
		var heals []func()
		broker := false
		for _, i := range picks {
			n := cfg.Nemeses[i]
			if n.Broker && broker {
				continue
			}
			broker = broker || n.Broker
			heal, what := n.Inject(env, rng)
			faults[n.Name]++
			logf("chaos %6.1fs: %s", time.Since(start).Seconds(), what)
			heals = append(heals, heal)
		}
		time.Sleep(time.Second + time.Duration(rng.Int64N(int64(cfg.Hold-time.Second)+1)))
		for _, heal := range slices.Backward(heals) {
			heal()
		}
		logf("chaos %6.1fs: healed", time.Since(start).Seconds())
	}

	// Heal everything, let the cluster settle, stop the clients, drain.
	panics.Disarm()
	c.WaitAlive(cfg.Brokers, time.Minute)
	for p := range cfg.Parts {
		if _, err := c.WaitLeader(env.Topic, p, -1, time.Minute); err != nil {
			tb.Fatalf("chaos (seed %d): after healing: %v", cfg.Seed, err)
		}
	}
	time.Sleep(cfg.Quiet)
	w.Stop()
	g.Stop()
	if err := w.Drain(ctx); err != nil {
		tb.Fatalf("chaos (seed %d): %v", cfg.Seed, err)
	}
	rep := ChaosReport{Seed: cfg.Seed, Elapsed: time.Since(start), Faults: faults, Ops: map[history.Kind]int{}}
	for _, op := range h.Ops() {
		rep.Ops[op.Kind]++
	}
	rep.Acked, rep.Failed, rep.Unknown = w.Counts()
	rep.Check = history.Check(h)
	return rep
}
