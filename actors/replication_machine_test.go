package actors

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

// replMachine drives a leader and two followers (simReplica: partition core
// plus in-memory log) and a minimal controller through random produces,
// leader syncs, follower fetches whose answers are delivered, lost or
// delivered late (remote is at-most-once), clock ticks with ISR shrink
// checks, ISR commits, and leader changes to a member of the committed ISR.
// After every step: every high watermark is within its log, the leader's
// never decreases within an epoch, and every batch acknowledged with acks=-1
// (and everything below the leader's high watermark) is held with the same
// bytes by every in-sync replica. At the end every replica catches up and
// holds exactly the leader's log.
type replMachine struct {
	reps     []*simReplica // broker id i+1 at index i
	leader   int
	epoch    int32
	isr      []int32    // as the controller recorded it
	proposal *isrChange // the leader's outstanding proposal
	nowMs    int64
	late     []lateAnswer

	pending map[int]ackWait  // token -> batch waiting for its reply
	acked   map[int64][]byte // base offset -> bytes, acknowledged with acks=-1
	token   int
	counter int
	lastHW  int64
}

type lateAnswer struct {
	to  int
	ans replicaFetchAnswer
}

type ackWait struct {
	base  int64
	bytes []byte
	all   bool
}

const (
	machineLagMs  = 1000
	machineMinISR = 2
)

func newReplMachine(t *rapid.T) *replMachine {
	m := &replMachine{epoch: 1, isr: []int32{1, 2, 3}, pending: map[int]ackWait{}, acked: map[int64][]byte{}}
	for id := int32(1); id <= 3; id++ {
		m.reps = append(m.reps, newSimReplica(id, machineLagMs, machineMinISR))
	}
	if _, err := m.reps[0].c.becomeLeader(1, m.isr, m.isr, 0); err != nil {
		t.Fatal(err)
	}
	for _, r := range m.reps[1:] {
		if _, err := r.c.becomeFollower(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *replMachine) lead() *simReplica { return m.reps[m.leader] }

// ack takes the replies the leader released.
func (m *replMachine) ack(t *rapid.T, rel []pendingReply) {
	for _, p := range rel {
		tok := p.token.(int)
		w, ok := m.pending[tok]
		if !ok {
			t.Fatalf("reply %d released twice", tok)
		}
		delete(m.pending, tok)
		if p.reply.ErrorCode != 0 {
			continue // unknown outcome
		}
		if p.reply.BaseOffset != w.base {
			t.Fatalf("reply for offset %d says %d", w.base, p.reply.BaseOffset)
		}
		if w.all {
			m.acked[w.base] = w.bytes
		}
	}
}

func (m *replMachine) propose(ch *isrChange) {
	if ch != nil {
		m.proposal = ch
	}
}

func (m *replMachine) Produce(t *rapid.T) {
	acks := rapid.SampledFrom([]int32{-1, -1, 1}).Draw(t, "acks")
	n := rapid.IntRange(1, 3).Draw(t, "records")
	vals := make([]string, n)
	for i := range vals {
		m.counter++
		vals[i] = fmt.Sprintf("v%d", m.counter)
	}
	l := m.lead()
	end := l.c.logEnd()
	d := l.produce(simBatch(func(a ...any) { t.Fatal(a...) }, vals...), acks)
	if d.reply.ErrorCode == int32(kerr.NotEnoughReplicas.Code) {
		if d.append != nil || l.c.logEnd() != end || acks != -1 || len(l.c.repl.isr) >= machineMinISR {
			t.Fatalf("NOT_ENOUGH_REPLICAS with isr %v, acks %d, appended %v", l.c.repl.isr, acks, l.c.logEnd() != end)
		}
		return
	}
	if d.append == nil || d.reply.ErrorCode != 0 {
		t.Fatalf("produce refused: %+v", d.reply)
	}
	m.token++
	m.pending[m.token] = ackWait{base: d.append.baseOffset, bytes: slices.Clone(l.batchAt(d.append.baseOffset)), all: d.waitAll}
	if l.c.released(d.waitOffset, d.waitAll) {
		m.ack(t, []pendingReply{{reply: d.reply, token: m.token}})
		return
	}
	l.c.hold(d.waitOffset, d.waitAll, d.reply, m.token)
}

func (m *replMachine) LeaderSync(t *rapid.T) {
	m.ack(t, m.lead().sync())
}

func (m *replMachine) Fetch(t *rapid.T) {
	i := rapid.IntRange(0, 2).Filter(func(i int) bool { return i != m.leader }).Draw(t, "follower")
	fate := rapid.SampledFrom([]string{"deliver", "deliver", "lose", "late"}).Draw(t, "fate")
	m.reps[i].lazySync = rapid.Bool().Draw(t, "lazySync")
	ans, ch, rel, err := m.reps[i].fetchFrom(m.lead(), m.nowMs, fate == "deliver")
	if err != nil {
		t.Fatalf("follower %d: %v", i+1, err)
	}
	m.propose(ch)
	m.ack(t, rel)
	if fate == "late" && len(m.late) < 6 {
		m.late = append(m.late, lateAnswer{to: i, ans: ans})
	}
}

func (m *replMachine) DeliverLate(t *rapid.T) {
	if len(m.late) == 0 {
		t.Skip("no late answer")
	}
	k := rapid.IntRange(0, len(m.late)-1).Draw(t, "late")
	la := m.late[k]
	m.late = slices.Delete(m.late, k, k+1)
	m.reps[la.to].lazySync = rapid.Bool().Draw(t, "lazySync")
	rel, err := m.reps[la.to].deliver(la.ans)
	if err != nil {
		t.Fatalf("late answer to %d: %v", la.to+1, err)
	}
	m.ack(t, rel)
}

// FollowerSync makes a follower's appends durable.
func (m *replMachine) FollowerSync(t *rapid.T) {
	i := rapid.IntRange(0, 2).Filter(func(i int) bool { return i != m.leader }).Draw(t, "follower")
	m.ack(t, m.reps[i].sync())
}

// Crash restarts a follower, dropping what it had not synced.
func (m *replMachine) Crash(t *rapid.T) {
	i := rapid.IntRange(0, 2).Filter(func(i int) bool { return i != m.leader }).Draw(t, "follower")
	if err := m.reps[i].crash(m.epoch, int32(m.leader+1)); err != nil {
		t.Fatalf("restart of %d: %v", i+1, err)
	}
}

func (m *replMachine) Tick(t *rapid.T) {
	m.nowMs += int64(rapid.IntRange(1, 1500).Draw(t, "ms"))
	m.propose(m.lead().c.maybeShrinkISR(m.nowMs))
}

func (m *replMachine) CommitISR(t *rapid.T) {
	if m.proposal == nil {
		t.Skip("no proposal")
	}
	m.isr = m.proposal.isr
	m.ack(t, m.lead().c.isrCommitted(m.proposal.epoch, m.isr))
	m.proposal = nil
}

// LeaderChange elects a member of the committed ISR. A replica that may
// have lost data in a crash and has not caught up refuses; the controller
// then picks another.
func (m *replMachine) LeaderChange(t *rapid.T) { m.elect(t, -1) }

// LeaderCrash restarts the leader, dropping what it had not synced, and
// elects another member of the ISR.
func (m *replMachine) LeaderCrash(t *rapid.T) { m.elect(t, m.leader) }

// elect moves leadership to an eligible member of the committed ISR other
// than the crashed replica (-1: none), which restarts as a follower.
func (m *replMachine) elect(t *rapid.T, crashed int) {
	var eligible []int32
	for _, id := range m.isr {
		if int(id-1) == crashed {
			continue
		}
		if m.reps[id-1].c.repl.lostData {
			if _, err := m.reps[id-1].c.becomeLeader(m.epoch+1, []int32{1, 2, 3}, m.isr, m.nowMs); !errors.Is(err, errNotCaughtUp) {
				t.Fatalf("broker %d took leadership before catching up: %v", id, err)
			}
			continue
		}
		eligible = append(eligible, id)
	}
	if len(eligible) == 0 {
		t.Skip("no eligible leader")
	}
	next := int(rapid.SampledFrom(eligible).Draw(t, "leader")) - 1
	m.epoch++
	m.leader, m.proposal, m.lastHW = next, nil, -1
	for i, r := range m.reps {
		if i == next {
			rel, err := r.c.becomeLeader(m.epoch, []int32{1, 2, 3}, m.isr, m.nowMs)
			if err != nil {
				t.Fatalf("broker %d leader of %d: %v", i+1, m.epoch, err)
			}
			m.ack(t, rel)
			continue
		}
		if i == crashed {
			m.ack(t, r.c.failPending(kerr.NotLeaderForPartition, "crashed"))
			if err := r.crash(m.epoch, int32(next+1)); err != nil {
				t.Fatalf("restart of %d: %v", i+1, err)
			}
			continue
		}
		failed, err := r.c.becomeFollower(m.epoch, int32(next+1))
		if err != nil {
			t.Fatalf("broker %d follower in %d: %v", i+1, m.epoch, err)
		}
		m.ack(t, failed)
	}
}

func (m *replMachine) Check(t *rapid.T) {
	for _, r := range m.reps {
		c := r.c
		if c.hw > c.logEnd() || c.durableEnd > c.logEnd() {
			t.Fatalf("broker %d: hw %d durable %d past log end %d", r.id, c.hw, c.durableEnd, c.logEnd())
		}
		end := c.logStart()
		for _, b := range r.log {
			end = batchEnd(b)
		}
		if end != c.logEnd() {
			t.Fatalf("broker %d: log ends at %d, checkpoint says %d", r.id, end, c.logEnd())
		}
	}
	l := m.lead()
	if l.c.hw < m.lastHW {
		t.Fatalf("leader hw went from %d to %d in epoch %d", m.lastHW, l.c.hw, m.epoch)
	}
	m.lastHW = l.c.hw
	inSync := slices.Clone(m.isr)
	for _, id := range l.c.maximalISR() {
		if !slices.Contains(inSync, id) {
			inSync = append(inSync, id)
		}
	}
	for _, id := range inSync {
		r := m.reps[id-1]
		if r.c.repl.lostData {
			continue // not electable until it catches up
		}
		for base, want := range m.acked {
			if got := r.batchAt(base); !bytes.Equal(got, want) {
				t.Fatalf("broker %d (in sync %v) lost the acknowledged batch at %d", id, inSync, base)
			}
		}
		for _, b := range l.log {
			if batchEnd(b) > l.c.hw {
				break
			}
			if !bytes.Equal(r.batchAt(batchBase(b)), b) {
				t.Fatalf("broker %d (in sync) differs from the leader below its hw %d at %d", id, l.c.hw, batchBase(b))
			}
		}
	}
}

// catchUp heals everything: followers fetch until nothing changes, proposals
// are committed, the leader syncs.
func (m *replMachine) catchUp(t *rapid.T) {
	for range 50 {
		m.ack(t, m.lead().sync())
		for i, r := range m.reps {
			if i == m.leader {
				continue
			}
			r.lazySync = false
			m.ack(t, r.sync())
			m.nowMs++
			_, ch, rel, err := r.fetchFrom(m.lead(), m.nowMs, true)
			if err != nil {
				t.Fatalf("catch-up fetch by %d: %v", r.id, err)
			}
			m.ack(t, rel)
			m.propose(ch)
			if m.proposal != nil {
				m.isr = m.proposal.isr
				m.ack(t, m.lead().c.isrCommitted(m.proposal.epoch, m.isr))
				m.proposal = nil
			}
		}
		m.Check(t)
	}
	l := m.lead()
	for _, r := range m.reps {
		if !slices.EqualFunc(r.log, l.log, bytes.Equal) {
			t.Fatalf("broker %d: %d batches, not the leader's %d", r.id, len(r.log), len(l.log))
		}
		if r.c.repl.lostData {
			t.Fatalf("broker %d still not caught up", r.id)
		}
		if r.c.hw != l.c.hw || l.c.hw != l.c.logEnd() {
			t.Fatalf("broker %d: hw %d, leader hw %d end %d", r.id, r.c.hw, l.c.hw, l.c.logEnd())
		}
	}
	if len(m.isr) != 3 {
		t.Fatalf("isr %v after catch-up", m.isr)
	}
	if len(m.pending) != 0 {
		t.Fatalf("%d replies still held after catch-up", len(m.pending))
	}
}

func batchBase(b []byte) int64 {
	h, _ := parseHeaderForTest(b)
	return h.BaseOffset
}

func batchEnd(b []byte) int64 {
	h, _ := parseHeaderForTest(b)
	return h.LastOffset() + 1
}

func TestReplicationMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newReplMachine(t)
		t.Repeat(rapid.StateMachineActions(m))
		m.catchUp(t)
	})
}

var parseHeaderForTest = recordbatch.ParseHeader
