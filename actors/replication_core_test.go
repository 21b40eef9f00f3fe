package actors

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// simReplica is a partition core with an in-memory log standing in for
// persistence.Log: it performs the appends and truncations the core asks for
// as the shell would.
type simReplica struct {
	id  int32
	c   *partitionCore
	log [][]byte // batches in offset order, offsets and epochs written in
	// lazySync: deliver leaves the appends unsynced.
	lazySync bool
}

func newSimReplica(id int32, lagMs int64, minISR int) *simReplica {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	c.configureReplication(id, lagMs, minISR)
	return &simReplica{id: id, c: c}
}

func (r *simReplica) append(op *appendOp) {
	b := slices.Clone(op.batch.Bytes())
	recordbatch.SetBaseOffset(b, op.baseOffset)
	recordbatch.SetLeaderEpoch(b, op.leaderEpoch)
	r.log = append(r.log, b)
	r.c.applyAppended(op)
}

// truncate cuts as persistence.Log.Truncate does: back to the start of the
// batch holding endOffset.
func (r *simReplica) truncate(op *truncateOp) {
	keep, newEnd, maxTS := 0, r.c.logStart(), int64(-1)
	for _, b := range r.log {
		h, _ := recordbatch.ParseHeader(b)
		if h.LastOffset() >= op.endOffset {
			break
		}
		keep, newEnd, maxTS = keep+1, h.LastOffset()+1, max(maxTS, h.MaxTimestamp)
	}
	r.log = r.log[:keep]
	r.c.adopt(persistence.TruncatedCheckpoint(r.c.cp, newEnd, maxTS))
}

// read returns the batches in [from, to).
func (r *simReplica) read(from, to int64) []byte {
	var out []byte
	for _, b := range r.log {
		h, _ := recordbatch.ParseHeader(b)
		if h.BaseOffset >= from && h.LastOffset() < to {
			out = append(out, b...)
		}
	}
	return out
}

// batchAt returns the batch whose base offset is base, or nil.
func (r *simReplica) batchAt(base int64) []byte {
	for _, b := range r.log {
		if h, _ := recordbatch.ParseHeader(b); h.BaseOffset == base {
			return b
		}
	}
	return nil
}

func (r *simReplica) sync() []pendingReply { return r.c.synced(r.c.logEnd()) }

// produce runs a produce on r (the leader) and performs its append.
func (r *simReplica) produce(b []byte, acks int32) produceDecision {
	d := r.c.decideProduce(&fluxopb.ProduceRequest{Records: b, Acks: acks})
	if d.append != nil {
		r.append(d.append)
	}
	return d
}

// fetchFrom runs one follower fetch against leader and applies the answer
// when deliver is set. It returns the leader's outputs.
func (r *simReplica) fetchFrom(leader *simReplica, nowMs int64, deliver bool) (replicaFetchAnswer, *isrChange, []pendingReply, error) {
	ans, change, rel := leader.c.replicaFetch(r.c.fetchRequest(), nowMs)
	if ans.err == nil && ans.diverging == nil {
		ans.records = leader.read(ans.fetchOffset, ans.readTo)
	}
	if !deliver {
		return ans, change, rel, nil
	}
	own, err := r.deliver(ans)
	return ans, change, append(rel, own...), err
}

// deliver applies a fetch answer and syncs. It returns what the sync
// released: a late answer may reach a replica that is now the leader.
func (r *simReplica) deliver(ans replicaFetchAnswer) ([]pendingReply, error) {
	step, err := r.c.handleFetchAnswer(ans)
	if err != nil {
		return nil, err
	}
	if step.truncate != nil {
		r.truncate(step.truncate)
	}
	for _, op := range step.appends {
		r.append(op)
	}
	if r.lazySync {
		return nil, nil
	}
	return r.sync(), nil
}

// sessions numbers the incarnations crash starts.
var sessions uint64

// crash drops what was not synced and restarts the core from the checkpoint
// recovery would find, as a replica that may have lost data, following
// leader in epoch.
func (r *simReplica) crash(epoch, leader int32) error {
	cfg := r.c.repl
	r.truncate(&truncateOp{endOffset: r.c.durableEnd})
	c := newPartitionCore(r.c.cp, 1<<20)
	c.configureReplication(cfg.self, cfg.lagTimeMs, cfg.minISR)
	sessions++
	c.markLostData(sessions)
	r.c = c
	// The role comes before the recovery sync: an unassigned core is a
	// single-replica leader, whose sync would raise the high watermark.
	if _, err := c.becomeFollower(epoch, leader); err != nil {
		return err
	}
	c.synced(c.logEnd())
	return nil
}

func simBatch(fatal func(...any), vals ...string) []byte {
	recs := make([]recordbatch.Record, len(vals))
	for i, v := range vals {
		recs[i] = recordbatch.Record{Timestamp: 1000 + int64(i), Value: []byte(v)}
	}
	b, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		fatal(err)
	}
	return b
}

// trio is a leader (broker 1) and followers 2 and 3 in epoch 1, all in sync.
func trio(t *testing.T, lagMs int64, minISR int) (l, f2, f3 *simReplica) {
	t.Helper()
	l, f2, f3 = newSimReplica(1, lagMs, minISR), newSimReplica(2, lagMs, minISR), newSimReplica(3, lagMs, minISR)
	all := []int32{1, 2, 3}
	if _, err := l.c.becomeLeader(1, all, all, 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*simReplica{f2, f3} {
		if _, err := f.c.becomeFollower(1, 1); err != nil {
			t.Fatal(err)
		}
	}
	return l, f2, f3
}

func mustFetch(t *testing.T, f, l *simReplica, nowMs int64) (*isrChange, []pendingReply) {
	t.Helper()
	ans, change, rel, err := f.fetchFrom(l, nowMs, true)
	if err != nil || ans.err != nil {
		t.Fatalf("fetch by %d: %v %v", f.id, err, ans.err)
	}
	return change, rel
}

func TestReplicationSingleReplicaIsLeader(t *testing.T) {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	if c.repl.role != roleLeader || !slices.Equal(c.repl.isr, []int32{0}) {
		t.Fatalf("role %v isr %v", c.repl.role, c.repl.isr)
	}
	d := produceAndApply(c, testBatch(t, 2, recordbatch.NoProducer))
	d.reply.ErrorCode = 0
	c.enqueue(d.waitOffset, d.reply, "a")
	if got := c.synced(2); len(got) != 1 || c.hw != 2 {
		t.Fatalf("sync released %v, hw %d", got, c.hw)
	}
}

func TestReplicationHWIsISRMinimum(t *testing.T) {
	l, f2, f3 := trio(t, 30_000, 2)
	for range 3 {
		l.produce(testBatch(t, 2, recordbatch.NoProducer), -1) // 0-1, 2-3, 4-5
	}
	l.sync()
	if l.c.hw != 0 {
		t.Fatalf("hw %d before any follower fetched", l.c.hw)
	}
	mustFetch(t, f2, l, 1) // f2 asks for 0: has nothing
	mustFetch(t, f2, l, 2) // f2 asks for 6: has everything
	if l.c.hw != 0 {
		t.Fatalf("hw %d with follower 3 unheard of", l.c.hw)
	}
	// f3 gets only the first batch: fetch a partial answer by hand.
	ans, _, _ := l.c.replicaFetch(f3.c.fetchRequest(), 3)
	ans.records = l.read(0, 2)
	if _, err := f3.deliver(ans); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, f3, l, 4) // asks for 2
	if l.c.hw != 2 {
		t.Fatalf("hw %d, want 2 (follower 3's log end)", l.c.hw)
	}
	if f2.c.hw != 0 || f3.c.hw != 2 {
		t.Fatalf("follower hws %d %d, want 0 (fetched before the leader's moved) and 2", f2.c.hw, f3.c.hw)
	}
	mustFetch(t, f3, l, 5) // asks for 6
	if l.c.hw != 6 {
		t.Fatalf("hw %d, want 6", l.c.hw)
	}
	mustFetch(t, f2, l, 6)
	if f2.c.hw != 6 {
		t.Fatalf("follower hw %d, want the leader's 6", f2.c.hw)
	}
}

func TestReplicationLeaderLEOIsDurableEnd(t *testing.T) {
	l, f2, f3 := trio(t, 30_000, 2)
	l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	mustFetch(t, f2, l, 1)
	mustFetch(t, f3, l, 1)
	mustFetch(t, f2, l, 1)
	mustFetch(t, f3, l, 1)
	if l.c.hw != 0 {
		t.Fatalf("hw %d: the leader has not synced", l.c.hw)
	}
	l.sync()
	if l.c.hw != 2 {
		t.Fatalf("hw %d after the leader's sync, want 2", l.c.hw)
	}
}

func TestReplicationAcksAllWaitsForFollowers(t *testing.T) {
	l, f2, f3 := trio(t, 30_000, 2)
	dAll := l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	dOne := l.produce(testBatch(t, 2, recordbatch.NoProducer), 1)
	if !dAll.waitAll || dOne.waitAll {
		t.Fatalf("waitAll %v %v", dAll.waitAll, dOne.waitAll)
	}
	l.c.hold(dAll.waitOffset, dAll.waitAll, dAll.reply, "all")
	l.c.hold(dOne.waitOffset, dOne.waitAll, dOne.reply, "one")
	if rel := l.sync(); len(rel) != 1 || rel[0].token != "one" {
		t.Fatalf("leader sync released %v, want the acks=1 reply only", rel)
	}
	mustFetch(t, f2, l, 1)
	mustFetch(t, f3, l, 1)
	if _, rel := mustFetch(t, f2, l, 2); rel != nil {
		t.Fatalf("released %v with follower 3 behind", rel)
	}
	_, rel := mustFetch(t, f3, l, 2)
	if len(rel) != 1 || rel[0].token != "all" {
		t.Fatalf("released %v after both followers fetched past it", rel)
	}
}

func TestReplicationNotEnoughReplicasBeforeAppend(t *testing.T) {
	l := newSimReplica(1, 30_000, 2)
	if _, err := l.c.becomeLeader(1, []int32{1, 2, 3}, []int32{1}, 0); err != nil {
		t.Fatal(err)
	}
	d := l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	if d.append != nil || d.reply.ErrorCode != int32(kerr.NotEnoughReplicas.Code) || l.c.logEnd() != 0 || len(l.log) != 0 {
		t.Fatalf("acks=-1 below min.insync: %+v, log end %d", d.reply, l.c.logEnd())
	}
	if d := l.produce(testBatch(t, 2, recordbatch.NoProducer), 1); d.append == nil {
		t.Fatalf("acks=1 refused: %+v", d.reply)
	}
}

func TestReplicationDefaultMinISR(t *testing.T) {
	for _, tc := range []struct {
		replicas []int32
		want     int
	}{{[]int32{1}, 1}, {[]int32{1, 2}, 1}, {[]int32{1, 2, 3}, 2}, {[]int32{1, 2, 3, 4, 5}, 2}} {
		r := newSimReplica(1, 0, 0)
		if _, err := r.c.becomeLeader(1, tc.replicas, tc.replicas, 0); err != nil {
			t.Fatal(err)
		}
		if r.c.repl.minISR != tc.want {
			t.Errorf("RF %d: min.insync %d, want %d", len(tc.replicas), r.c.repl.minISR, tc.want)
		}
	}
	r := newSimReplica(1, 0, 3)
	r.c.becomeLeader(1, []int32{1, 2, 3}, []int32{1, 2, 3}, 0)
	if r.c.repl.minISR != 3 {
		t.Errorf("configured min.insync %d, want 3", r.c.repl.minISR)
	}
}

func TestReplicationISRShrinkAndExpand(t *testing.T) {
	l, f2, f3 := trio(t, 100, 1)
	l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	l.sync()
	mustFetch(t, f2, l, 10)
	mustFetch(t, f2, l, 20)
	d := l.produce(testBatch(t, 2, recordbatch.NoProducer), -1) // 2-3
	l.c.hold(d.waitOffset, true, d.reply, "p")
	l.sync()
	if ch := l.c.maybeShrinkISR(100); ch != nil {
		t.Fatalf("shrink within the lag time: %v", ch)
	}
	ch := l.c.maybeShrinkISR(101) // follower 3 last caught up at 0
	if ch == nil || !slices.Equal(ch.isr, []int32{1, 2}) || ch.epoch != 1 {
		t.Fatalf("shrink: %+v", ch)
	}
	if l.c.hw != 0 {
		t.Fatalf("hw %d moved before the shrink was committed", l.c.hw)
	}
	if rel := l.c.isrCommitted(1, ch.isr); rel != nil || l.c.hw != 2 {
		t.Fatalf("after commit: released %v, hw %d, want 2", rel, l.c.hw)
	}
	mustFetch(t, f2, l, 110) // reads 2-3
	_, rel := mustFetch(t, f2, l, 111)
	if len(rel) != 1 || l.c.hw != 4 {
		t.Fatalf("released %v hw %d without follower 3", rel, l.c.hw)
	}
	// Follower 2 goes quiet too; the leader never drops itself.
	ch = l.c.maybeShrinkISR(1000)
	if ch == nil || !slices.Equal(ch.isr, []int32{1}) {
		t.Fatalf("shrink to the leader: %+v", ch)
	}
	l.c.isrCommitted(1, ch.isr)
	if ch := l.c.maybeShrinkISR(5000); ch != nil {
		t.Fatalf("shrink of the leader: %v", ch)
	}
	// Follower 3 catches up: one fetch to read, one to show it reached the HW.
	if ch, _ := mustFetch(t, f3, l, 5001); ch != nil {
		t.Fatalf("expanded before catching up: %v", ch)
	}
	ch, _ = mustFetch(t, f3, l, 5002)
	if ch == nil || !slices.Equal(ch.isr, []int32{1, 3}) {
		t.Fatalf("expand: %+v", ch)
	}
}

func TestReplicationStaleEpochRefused(t *testing.T) {
	l, f2, _ := trio(t, 30_000, 1)
	if _, err := l.c.becomeLeader(0, []int32{1, 2, 3}, []int32{1, 2, 3}, 0); !errors.Is(err, errStaleEpoch) {
		t.Fatalf("older epoch: %v", err)
	}
	if _, err := l.c.becomeFollower(1, 2); !errors.Is(err, errStaleEpoch) {
		t.Fatalf("same epoch, another leader: %v", err)
	}
	if _, err := f2.c.becomeFollower(1, 1); err != nil {
		t.Fatalf("repeat of the current role: %v", err)
	}
	if _, err := f2.c.becomeLeader(2, []int32{1, 2, 3}, []int32{1, 3}, 0); !errors.Is(err, errNotInISR) {
		t.Fatalf("leader outside the ISR: %v", err)
	}
	if _, err := f2.c.becomeLeader(2, []int32{1, 2, 3}, []int32{2, 3}, 0); err != nil {
		t.Fatal(err)
	}
	// The old leader's follower still asks with epoch 1: fenced.
	req := replicaFetchRequest{replicaID: 3, leaderEpoch: 1, fetchOffset: 0, lastFetchedEpoch: -1}
	if ans, _, _ := f2.c.replicaFetch(req, 0); ans.err != kerr.FencedLeaderEpoch {
		t.Fatalf("stale fetch: %v", ans.err)
	}
	req.leaderEpoch = 3
	if ans, _, _ := f2.c.replicaFetch(req, 0); ans.err != kerr.UnknownLeaderEpoch {
		t.Fatalf("future fetch: %v", ans.err)
	}
	// The deposed leader, once told, refuses produce.
	if _, err := l.c.becomeFollower(2, 2); err != nil {
		t.Fatal(err)
	}
	if d := l.produce(testBatch(t, 1, recordbatch.NoProducer), 1); d.append != nil || d.reply.ErrorCode != int32(kerr.NotLeaderForPartition.Code) {
		t.Fatalf("follower produce: %+v", d.reply)
	}
}

func TestReplicationFollowerTruncatesOnDivergence(t *testing.T) {
	a, b, c := trio(t, 30_000, 1)
	a.produce(testBatch(t, 3, recordbatch.NoProducer), -1) // 0-2
	a.produce(testBatch(t, 3, recordbatch.NoProducer), -1) // 3-5
	a.sync()
	mustFetch(t, b, a, 1)
	mustFetch(t, c, a, 1)
	a.produce(testBatch(t, 3, recordbatch.NoProducer), -1) // 6-8: only on a
	a.sync()
	// b becomes leader of epoch 2 and writes its own 6-7.
	all := []int32{1, 2, 3}
	if _, err := b.c.becomeLeader(2, all, all, 10); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*simReplica{a, c} {
		if _, err := f.c.becomeFollower(2, 2); err != nil {
			t.Fatal(err)
		}
	}
	b.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	b.sync()
	ans, _, _, err := a.fetchFrom(b, 11, true)
	if err != nil || ans.diverging == nil || *ans.diverging != (EpochEnd{LeaderEpoch: 1, EndOffset: 6}) {
		t.Fatalf("diverging answer %+v %v", ans.diverging, err)
	}
	if a.c.logEnd() != 6 || len(a.log) != 2 || a.c.lastEpoch() != 1 {
		t.Fatalf("after truncation: end %d, %d batches, last epoch %d", a.c.logEnd(), len(a.log), a.c.lastEpoch())
	}
	mustFetch(t, a, b, 12)
	mustFetch(t, c, b, 12)
	for _, f := range []*simReplica{a, c} {
		if len(f.log) != len(b.log) {
			t.Fatalf("replica %d has %d batches, leader %d", f.id, len(f.log), len(b.log))
		}
		for i := range b.log {
			if !bytes.Equal(f.log[i], b.log[i]) {
				t.Fatalf("replica %d batch %d differs", f.id, i)
			}
		}
	}
	if eps := a.c.cp.Epochs; len(eps) != 2 || eps[1].Epoch != 2 || eps[1].StartOffset != 6 {
		t.Fatalf("epoch history %v", eps)
	}
}

func TestReplicationTruncationRollsBackProducerState(t *testing.T) {
	a, b, _ := trio(t, 30_000, 1)
	p := recordbatch.Producer{ID: 7, Epoch: 0, Sequence: 0}
	a.produce(testBatch(t, 2, p), -1) // seq 0-1 at 0-1
	a.sync()
	mustFetch(t, b, a, 1)
	p.Sequence = 2
	retry := testBatch(t, 2, p)
	a.produce(retry, -1) // seq 2-3 at 2-3: only on a
	all := []int32{1, 2, 3}
	if _, err := b.c.becomeLeader(2, all, all, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.becomeFollower(2, 2); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.fetchFrom(b, 1, true); err != nil || a.c.logEnd() != 2 {
		t.Fatalf("truncation: %v, end %d", err, a.c.logEnd())
	}
	if ps := a.c.cp.Producers; len(ps) != 1 || len(ps[0].Batches) != 1 || ps[0].Batches[0].LastSequence != 1 {
		t.Fatalf("producer state after truncation: %v", ps)
	}
	// The producer's retry goes to the new leader and is appended there (not
	// a duplicate), and the old leader copies it.
	if d := b.produce(retry, -1); d.append == nil || d.reply.BaseOffset != 2 {
		t.Fatalf("retry on the new leader: %+v", d.reply)
	}
	b.sync()
	mustFetch(t, a, b, 2)
	if a.c.logEnd() != 4 || !bytes.Equal(a.batchAt(2), b.batchAt(2)) {
		t.Fatalf("follower end %d after the retry", a.c.logEnd())
	}
}

func TestReplicationCrashedReplicaLeadsOnlyAfterCatchUp(t *testing.T) {
	l, f2, _ := trio(t, 30_000, 1)
	l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	l.sync()
	f2.lazySync = true
	mustFetch(t, f2, l, 1)                     // appended, not synced
	late, _, _, _ := f2.fetchFrom(l, 1, false) // at the leader's end; delivered after the crash
	if err := f2.crash(1, 1); err != nil {
		t.Fatal(err)
	}
	// Replayed to the restarted replica at the same offset, a pre-crash
	// answer must not count as catching up: the leader still believes the
	// lost offsets are here.
	late.fetchOffset = f2.c.logEnd()
	late.readTo = late.fetchOffset
	if _, err := f2.deliver(late); err != nil || !f2.c.repl.lostData {
		t.Fatalf("pre-crash answer cleared the lost-data mark (err %v)", err)
	}
	if f2.c.logEnd() != 0 {
		t.Fatalf("crash kept unsynced offsets: end %d", f2.c.logEnd())
	}
	all := []int32{1, 2, 3}
	if _, err := f2.c.becomeLeader(2, all, all, 0); !errors.Is(err, errNotCaughtUp) {
		t.Fatalf("elected before catching up: %v", err)
	}
	f2.lazySync = false
	mustFetch(t, f2, l, 2) // reads 0-1
	if !f2.c.repl.lostData {
		t.Fatal("caught up before reaching the leader's end")
	}
	mustFetch(t, f2, l, 3) // at the leader's end
	if _, err := f2.c.becomeLeader(2, all, all, 0); err != nil {
		t.Fatalf("caught-up replica refused: %v", err)
	}
}

func TestReplicationFollowerRejectsBadBatches(t *testing.T) {
	l, f, _ := trio(t, 30_000, 1)
	l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	l.produce(testBatch(t, 2, recordbatch.NoProducer), -1)
	good := l.read(0, 4)
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 1
	if _, err := f.c.followerAppend(bad, 0); err == nil {
		t.Fatal("corrupt batch accepted")
	}
	if _, err := f.c.followerAppend(l.read(2, 4), 0); err == nil {
		t.Fatal("gap accepted")
	}
	ops, err := f.c.followerAppend(good, 3)
	if err != nil || len(ops) != 2 || ops[1].baseOffset != 2 || ops[1].leaderEpoch != 1 {
		t.Fatalf("good batches: %v %v", ops, err)
	}
	// A late answer for an offset we are past is ignored.
	for _, op := range ops {
		f.append(op)
	}
	stale := replicaFetchAnswer{leaderEpoch: 1, fetchOffset: 0, readTo: 4, records: good}
	if step, err := f.c.handleFetchAnswer(stale); err != nil || step.appends != nil || step.truncate != nil {
		t.Fatalf("stale answer: %+v %v", step, err)
	}
	f.sync()
	if f.c.hw != 3 {
		t.Fatalf("follower hw %d, want min(leader 3, durable 4)", f.c.hw)
	}
}
