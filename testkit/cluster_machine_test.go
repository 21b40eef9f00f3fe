package testkit_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// clusterMachine drives one 3-broker cluster as a state machine: produce,
// read back, commit and fetch a group's offset, inject a fault (isolate a
// broker, pause a leader's partition actor, panic in partition actors),
// heal. After every read the model is checked: every acknowledged record
// is where it was acknowledged, nothing appears twice or out of nowhere,
// and the committed offset is the last one acknowledged (or, after an
// unknown outcome, one of the two). rapid shrinks a failure to the
// shortest schedule that still fails.
type clusterMachine struct {
	c      *testkit.Cluster
	panics *testkit.PanicInjector
	topic  string
	group  string
	cl     *kgo.Client
	adm    *kadm.Client
	ctx    context.Context

	next    int
	acked   map[int32]map[int64]string // partition -> offset -> value
	maybe   map[string]bool            // values whose send had an unknown outcome
	commit  int64                      // partition 0's committed offset, -1 none
	commitQ []int64                    // commits of unknown outcome since
	// isolated is the broker cut off, -1 none. Kills are the fault tests'
	// and the chaos runs' business (a restart costs seconds); here a
	// broker-level fault is an isolation.
	isolated int
	paused   bool
	pausedB  int32
	// steps is the schedule so far, printed if a step hangs.
	steps []string
	t0    time.Time
}

// stepStuckAfter bounds a step that cannot be cancelled: an idempotent send
// of unknown outcome is retried by franz-go whatever its context says.
const stepStuckAfter = 90 * time.Second

func (m *clusterMachine) step(format string, args ...any) {
	m.steps = append(m.steps, fmt.Sprintf("%7.2fs  ", time.Since(m.t0).Seconds())+fmt.Sprintf(format, args...))
}

// guard panics, naming the step, the schedule so far and each broker's view
// of the partitions, if the step has not ended within stepStuckAfter: a
// hang then says what hung instead of running into the test timeout.
func (m *clusterMachine) guard(what string) (done func()) {
	t := time.AfterFunc(stepStuckAfter, func() {
		var b strings.Builder
		fmt.Fprintf(&b, "cluster machine: %s (topic %s) stuck for %v; the schedule:\n", what, m.topic, stepStuckAfter)
		for _, s := range m.steps {
			fmt.Fprintf(&b, "  %s\n", s)
		}
		for i := range m.c.Size() {
			if br := m.c.Broker(i); br != nil {
				for p := range int32(machineParts) {
					st, _ := br.Node().Partition(m.topic, p)
					ld, _ := br.Node().PartitionLeadership(m.topic, p)
					fmt.Fprintf(&b, "  broker %d p%d: replica %+v, recorded %+v, fenced %v\n", i, p, st, ld, br.Node().Fenced())
				}
			}
		}
		panic(b.String())
	})
	return func() { t.Stop() }
}

const machineParts = 2

func (m *clusterMachine) Produce(t *rapid.T) {
	p := rapid.Int32Range(0, machineParts-1).Draw(t, "partition")
	if m.paused && p == 0 {
		// An idempotent send already handed to the paused leader cannot be
		// cancelled (franz-go keeps retrying it): it would block this step,
		// and so the Heal that ends the pause, for good.
		t.Skip("partition 0's leader is paused")
	}
	v := fmt.Sprintf("v%d", m.next)
	m.next++
	ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: m.topic, Partition: p, Value: []byte(v)}
	m.step("produce %s to p%d", v, p)
	done := m.guard("produce " + v)
	err := m.cl.ProduceSync(ctx, r).FirstErr()
	done()
	m.step("  %s: offset %d, err %v", v, r.Offset, err)
	switch {
	case err == nil:
		if prev, ok := m.acked[p][r.Offset]; ok {
			t.Fatalf("%s acknowledged at %s-%d offset %d, which already held acknowledged %s", v, m.topic, p, r.Offset, prev)
		}
		m.acked[p][r.Offset] = v
	case errors.Is(err, kerr.NotEnoughReplicas):
	default:
		m.maybe[v] = true
	}
}

func (m *clusterMachine) CommitOffset(t *rapid.T) {
	off := rapid.Int64Range(0, 1000).Draw(t, "offset")
	ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: m.topic, Partition: 0, At: off, LeaderEpoch: -1})
	res, err := m.adm.CommitOffsets(ctx, m.group, os)
	if err == nil {
		err = res.Error()
	}
	m.step("commit %d: err %v", off, err)
	if err == nil {
		m.commit, m.commitQ = off, nil
		return
	}
	m.commitQ = append(m.commitQ, off)
}

// Fault injects one fault. t.Skip is rapid's precondition: a draw that
// does not apply now (a second isolation, a second pause, no leader to
// pause) is discarded and rapid draws another action; the check still runs.
func (m *clusterMachine) Fault(t *rapid.T) {
	switch rapid.IntRange(0, 3).Draw(t, "fault") {
	case 0, 1:
		if m.isolated >= 0 {
			t.Skip("one broker down at a time")
		}
		i := rapid.IntRange(0, m.c.Size()-1).Draw(t, "broker")
		m.c.Isolate(i)
		m.isolated = i
		m.step("isolate broker %d", i)
	case 2:
		if m.paused {
			t.Skip("one pause at a time")
		}
		l := m.c.Leader(m.topic, 0)
		if l < 0 {
			t.Skip("no leader to pause")
		}
		m.c.PausePartition(int(l), m.topic, 0)
		m.paused, m.pausedB = true, l
		m.step("pause p0 on broker %d", l)
	case 3:
		p := rapid.Int32Range(0, machineParts-1).Draw(t, "panic partition")
		m.panics.Arm(fmt.Sprintf("/%s-%d", m.topic, p), 1, nil)
		m.step("arm a panic in p%d", p)
	}
}

func (m *clusterMachine) Heal(t *rapid.T) {
	m.heal(t)
}

func (m *clusterMachine) heal(t *rapid.T) {
	m.step("heal")
	m.panics.Disarm()
	if m.paused {
		m.c.ResumePartition(int(m.pausedB), m.topic, 0)
		m.paused = false
	}
	if m.isolated >= 0 {
		m.c.Heal(m.isolated)
		// An isolated leader is a zombie: until its cache catches up
		// (resync every second) clients with old metadata may read its
		// stale high watermark, as Kafka's may from a zombie. Reads in
		// Check are only compared once it has caught up.
		time.Sleep(2 * time.Second)
		m.isolated = -1
	}
}

// Check reads every partition back (a fresh consumer, up to the end
// offsets) and compares it with the model. Reads need a majority and
// unpaused leaders: they wait (bounded) for the cluster to serve.
func (m *clusterMachine) Check(t *rapid.T) {
	if m.paused || m.isolated >= 0 {
		return // a paused leader serves nothing; an isolated one may serve stale reads
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	// While leaders move, a partition may answer NOT_LEADER: ask again.
	ends, err := m.adm.ListEndOffsets(ctx, m.topic)
	for (err != nil || ends.Error() != nil) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		ends, err = m.adm.ListEndOffsets(ctx, m.topic)
	}
	if err != nil || ends.Error() != nil {
		t.Fatalf("list end offsets: %v %v", err, ends.Error())
	}
	seen := map[string]int64{}
	for p := range int32(machineParts) {
		end, _ := ends.Lookup(m.topic, p)
		got := map[int64]string{}
		if end.Offset > 0 {
			cl, err := kgo.NewClient(kgo.SeedBrokers(m.c.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{m.topic: {p: kgo.NewOffset().AtStart()}}))
			if err != nil {
				t.Fatal(err)
			}
			for int64(len(got)) < end.Offset && ctx.Err() == nil {
				cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[r.Offset] = string(r.Value) })
			}
			cl.Close()
		}
		for off, v := range m.acked[p] {
			if off >= end.Offset {
				t.Fatalf("%s-%d: acknowledged %s at %d, but the end offset is %d", m.topic, p, v, off, end.Offset)
			}
			if got[off] != v {
				t.Fatalf("%s-%d offset %d: acknowledged %s, read %q", m.topic, p, off, v, got[off])
			}
		}
		for off, v := range got {
			if at, dup := seen[v]; dup {
				t.Fatalf("%s read twice: offsets %d and %d", v, at, off)
			}
			seen[v] = off
			if m.acked[p][off] != v && !m.maybe[v] {
				t.Fatalf("%s-%d offset %d holds %s, never sent with an unknown outcome nor acknowledged there", m.topic, p, off, v)
			}
		}
	}
	res, err := m.adm.FetchOffsets(ctx, m.group)
	for (err != nil || res.Error() != nil) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		res, err = m.adm.FetchOffsets(ctx, m.group)
	}
	if err != nil || res.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, res.Error())
	}
	got := int64(-1)
	if o, ok := res.Lookup(m.topic, 0); ok {
		got = o.At
	}
	if got != m.commit && !slices.Contains(m.commitQ, got) {
		t.Fatalf("committed offset %d; the model allows %d or one of %v", got, m.commit, m.commitQ)
	}
	m.commit, m.commitQ = got, nil
}

// TestClusterStateMachine runs the cluster machine under rapid. One
// cluster serves every check (starting one takes seconds); each check has
// its own topic and group and heals what it broke.
func TestClusterStateMachine(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("3") // each step costs real failovers: a CI-sized default
	}
	if f := flag.Lookup("rapid.steps"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("15")
	}
	panics := &testkit.PanicInjector{}
	c := testkit.StartCluster(t, 3, fluxo.WithActorMiddleware(panics.Middleware))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		m := &clusterMachine{
			c: c, panics: panics, ctx: ctx,
			topic: fmt.Sprintf("machine-%d", n), group: fmt.Sprintf("machine-group-%d", n),
			acked: map[int32]map[int64]string{}, maybe: map[string]bool{}, commit: -1, isolated: -1, t0: time.Now(),
		}
		for p := range int32(machineParts) {
			m.acked[p] = map[int64]string{}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(15*time.Second))
		if err != nil {
			rt.Fatal(err)
		}
		defer cl.Close()
		m.cl, m.adm = cl, kadm.NewClient(cl)
		if _, err := m.adm.CreateTopic(ctx, machineParts, 3, nil, m.topic); err != nil {
			rt.Fatalf("create topic: %v", err)
		}
		defer m.heal(rt)
		rt.Repeat(rapid.StateMachineActions(m))
	})
}
