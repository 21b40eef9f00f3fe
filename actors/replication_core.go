package actors

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Replication in the partition core: roles and epochs, the leader's view of
// its followers (fetch positions, the in-sync set, the high watermark as the
// in-sync minimum) and the follower's side (appending what it fetched,
// truncating to the leader's history). Pure like the rest of partitionCore:
// times are passed in as milliseconds, and what must reach the disk or the
// controller comes back as values (appendOp, truncateOp, isrChange).

type role int8

const (
	roleLeader role = iota
	roleFollower
)

// defaultReplicaLagTimeMs is Kafka's replica.lag.time.max.ms default.
const defaultReplicaLagTimeMs = 30_000

var (
	errStaleEpoch  = errors.New("stale leader epoch")
	errNotInISR    = errors.New("the new leader must be in the in-sync set")
	errNotCaughtUp = errors.New("replica may have lost unsynced data and has not caught up with a leader since")
)

// replication is the replication part of partitionCore's state.
type replication struct {
	role     role
	assigned bool // the controller told us our role at least once
	self     int32
	leader   int32
	replicas []int32
	// isr is the in-sync set as the controller has recorded it; proposed is a
	// change sent to the controller and not yet committed (nil: none). As in
	// Kafka (KIP-497) the high watermark counts the union of both, so a shrink
	// releases nothing before the controller knows of it.
	isr        []int32
	proposed   []int32
	followers  map[int32]*followerState
	epochStart int64 // leader: the log end when its epoch began
	leaderHW   int64 // follower: the last high watermark the leader sent
	minISR     int
	minISRSet  bool // minISR configured; otherwise defaultMinISR(len(replicas))
	lagTimeMs  int64
	// lostData: this replica may have lost unsynced data in a crash; it does
	// not become leader before it has fetched up to a leader's log end.
	lostData bool
	// session tags this incarnation's fetches: an answer to a fetch sent
	// before a restart (remote delivers late, to the same PID) carries
	// another and is ignored.
	session uint64
}

// followerState is the leader's view of one follower.
type followerState struct {
	leo                int64 // -1: unknown (no fetch in this epoch yet)
	lastFetchMs        int64
	lastFetchLeaderEnd int64
	lastCaughtUpMs     int64
}

// isrChange is an in-sync set the leader proposes; the shell records it
// through the controller and answers with isrCommitted.
type isrChange struct {
	epoch int32
	isr   []int32
}

// truncateOp asks the shell to remove every offset at or after endOffset
// (persistence.Log.Truncate) and hand the resulting checkpoint to adopt.
type truncateOp struct{ endOffset int64 }

// replicaFetchRequest is a follower's fetch (Kafka's Fetch with replica id,
// current leader epoch and last fetched epoch, KIP-320/KIP-595).
type replicaFetchRequest struct {
	replicaID        int32
	leaderEpoch      int32 // the follower's current leader epoch
	fetchOffset      int64 // the follower's log end: it holds everything below
	lastFetchedEpoch int32 // epoch of the follower's last batch; -1: none
	session          uint64
}

// replicaFetchAnswer is the leader's answer. The shell fills records with
// the batches in [fetchOffset, readTo).
type replicaFetchAnswer struct {
	err         *kerr.Error
	leaderEpoch int32
	fetchOffset int64
	session     uint64 // the request's, echoed
	readTo      int64
	hw          int64
	logStart    int64
	diverging   *EpochEnd // set: truncate (see divergenceTruncation) and fetch again
	records     []byte
}

// followerStep is what the follower does with a fetch answer: truncate, or
// append (in order, each followed by applyAppended).
type followerStep struct {
	truncate *truncateOp
	appends  []*appendOp
}

// singleReplica is the role of a partition never told otherwise: leader of a
// one-replica set, so the high watermark is its durable log end.
func singleReplica() replication {
	return replication{role: roleLeader, replicas: []int32{0}, isr: []int32{0}, minISR: 1, lagTimeMs: defaultReplicaLagTimeMs}
}

// defaultMinISR is min.insync.replicas when the topic does not set it: 2
// with three or more replicas (so acks=-1 survives one loss), else 1.
func defaultMinISR(replicas int) int {
	if replicas >= 3 {
		return 2
	}
	return 1
}

// configureReplication sets this replica's broker id, replica.lag.time.max.ms
// (<= 0: 30 s) and min.insync.replicas (<= 0: defaultMinISR of the replica
// set the leader is given).
func (c *partitionCore) configureReplication(self int32, lagTimeMs int64, minISR int) {
	r := &c.repl
	if !r.assigned {
		r.replicas, r.isr, r.leader = []int32{self}, []int32{self}, self
	}
	r.self = self
	if lagTimeMs > 0 {
		r.lagTimeMs = lagTimeMs
	}
	r.minISR, r.minISRSet = max(minISR, 1), minISR > 0
}

// setMinISR changes min.insync.replicas (<= 0: defaultMinISR of replicas).
func (c *partitionCore) setMinISR(minISR, replicas int) {
	r := &c.repl
	r.minISR, r.minISRSet = max(minISR, 1), minISR > 0
	if !r.minISRSet {
		r.minISR = defaultMinISR(replicas)
	}
}

// awaitRole makes a clustered replica refuse produce until the controller
// tells it its role: it starts as a follower of no leader.
func (c *partitionCore) awaitRole() {
	c.repl.role, c.repl.leader = roleFollower, -1
}

// markLostData records that a crash may have dropped unsynced data here.
// session must differ from every earlier incarnation's (the shell's
// incarnation number): only an answer to a fetch sent since shows what the
// leader holds now.
func (c *partitionCore) markLostData(session uint64) {
	c.repl.lostData, c.repl.session = true, session
}

// checkEpoch refuses an epoch older than ours, and the same epoch unless it
// repeats what we already are (unchanged is true then).
func (c *partitionCore) checkEpoch(epoch int32, r role, leader int32) (unchanged bool, err error) {
	if !c.repl.assigned {
		if epoch < c.leaderEpoch {
			return false, fmt.Errorf("%w: %d below %d", errStaleEpoch, epoch, c.leaderEpoch)
		}
		return false, nil
	}
	switch {
	case epoch > c.leaderEpoch:
		return false, nil
	case epoch == c.leaderEpoch && c.repl.role == r && c.repl.leader == leader:
		return true, nil
	}
	return false, fmt.Errorf("%w: %d, current %d", errStaleEpoch, epoch, c.leaderEpoch)
}

// becomeLeader makes this replica the leader of epoch with the given
// replicas and in-sync set (which must hold it). The epoch starts at the
// current log end. Replies still held stay held; the ones the new in-sync
// set releases are returned.
func (c *partitionCore) becomeLeader(epoch int32, replicas, isr []int32, nowMs int64) ([]pendingReply, error) {
	r := &c.repl
	unchanged, err := c.checkEpoch(epoch, roleLeader, r.self)
	if err != nil || unchanged {
		return nil, err
	}
	if !slices.Contains(isr, r.self) {
		return nil, errNotInISR
	}
	if r.lostData {
		return nil, errNotCaughtUp
	}
	c.leaderEpoch = epoch
	r.role, r.assigned, r.leader = roleLeader, true, r.self
	r.replicas, r.isr, r.proposed = slices.Clone(replicas), slices.Clone(isr), nil
	if !r.minISRSet {
		r.minISR = defaultMinISR(len(replicas))
	}
	r.epochStart = c.cp.LogEndOffset
	r.followers = make(map[int32]*followerState, len(replicas))
	for _, id := range replicas {
		if id == r.self {
			continue
		}
		f := &followerState{leo: -1, lastFetchLeaderEnd: -1}
		if slices.Contains(isr, id) {
			f.lastCaughtUpMs = nowMs // Kafka: in-sync members get a full lag period
		}
		r.followers[id] = f
	}
	c.advanceHW()
	return c.release(), nil
}

// becomeFollower makes this replica a follower of leader in epoch. Held
// replies (a deposed leader's) are returned failed with NOT_LEADER: their
// batches may or may not survive the new leader's log.
func (c *partitionCore) becomeFollower(epoch int32, leader int32) ([]pendingReply, error) {
	r := &c.repl
	unchanged, err := c.checkEpoch(epoch, roleFollower, leader)
	if err != nil || unchanged {
		return nil, err
	}
	c.leaderEpoch = epoch
	r.role, r.assigned, r.leader = roleFollower, true, leader
	r.proposed, r.followers = nil, nil
	r.leaderHW = c.hw
	return c.failPending(kerr.NotLeaderForPartition, fmt.Sprintf("leadership moved to broker %d in epoch %d", leader, epoch)), nil
}

// endOffsetForEpoch answers OffsetForLeaderEpoch from the epoch history as
// Kafka's leader-epoch cache does (see epochEnd): the largest epoch <= epoch
// and the offset where it ends.
func (c *partitionCore) endOffsetForEpoch(epoch int32) EpochEnd {
	return epochEnd(c.cp.Epochs, c.leaderEpoch, c.cp.LogEndOffset, epoch)
}

// lastEpoch is the epoch of the last batch in the log, -1 when unknown.
func (c *partitionCore) lastEpoch() int32 {
	if n := len(c.cp.Epochs); n > 0 {
		return c.cp.Epochs[n-1].Epoch
	}
	return -1
}

// maximalISR is the in-sync set the high watermark counts: the committed one
// and the proposed change together.
func (c *partitionCore) maximalISR() []int32 {
	out := slices.Clone(c.repl.isr)
	for _, id := range c.repl.proposed {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// advanceHW raises the leader's high watermark to the smallest log end in the
// in-sync set: its own durable end and each in-sync follower's fetch offset.
// A follower not heard from in this epoch holds it where it is.
func (c *partitionCore) advanceHW() {
	hw := c.durableEnd
	for _, id := range c.maximalISR() {
		if id == c.repl.self {
			continue
		}
		f := c.repl.followers[id]
		if f == nil || f.leo < 0 {
			return
		}
		hw = min(hw, f.leo)
	}
	c.setHW(hw)
}

// replicaFetch handles a follower's fetch on the leader. A fetch that agrees
// with the leader's epoch history records the follower's log end (a follower
// asking for N holds everything below N), may add it to the in-sync set
// (returned as a proposal) and may raise the high watermark (releasing
// replies); the answer names the offsets to send. One that does not agree is
// answered with the diverging epoch and changes nothing.
func (c *partitionCore) replicaFetch(req replicaFetchRequest, nowMs int64) (replicaFetchAnswer, *isrChange, []pendingReply) {
	ans := replicaFetchAnswer{leaderEpoch: c.leaderEpoch, fetchOffset: req.fetchOffset, session: req.session, hw: c.hw, logStart: c.cp.LogStartOffset}
	r := &c.repl
	f := r.followers[req.replicaID]
	switch {
	case r.role != roleLeader:
		ans.err = kerr.NotLeaderForPartition
	case req.leaderEpoch < c.leaderEpoch:
		ans.err = kerr.FencedLeaderEpoch
	case req.leaderEpoch > c.leaderEpoch:
		ans.err = kerr.UnknownLeaderEpoch
	case f == nil:
		ans.err = kerr.ReplicaNotAvailable
	}
	if ans.err != nil {
		return ans, nil, nil
	}
	end := c.cp.LogEndOffset
	if req.lastFetchedEpoch >= 0 {
		ee := c.endOffsetForEpoch(req.lastFetchedEpoch)
		if ee.LeaderEpoch != req.lastFetchedEpoch || ee.EndOffset < req.fetchOffset {
			ans.diverging = &ee
			return ans, nil, nil
		}
	} else if req.fetchOffset > end {
		ans.diverging = &EpochEnd{LeaderEpoch: -1, EndOffset: end}
		return ans, nil, nil
	}
	if req.fetchOffset < c.cp.LogStartOffset || req.fetchOffset > end {
		ans.err = kerr.OffsetOutOfRange
		return ans, nil, nil
	}
	// Kafka's Replica.updateFetchState: caught up now if at our end, or as of
	// the previous fetch if this one reaches the end we had then.
	if req.fetchOffset >= end {
		f.lastCaughtUpMs = nowMs
	} else if req.fetchOffset >= f.lastFetchLeaderEnd && f.lastFetchLeaderEnd >= 0 {
		f.lastCaughtUpMs = max(f.lastCaughtUpMs, f.lastFetchMs)
	}
	f.leo, f.lastFetchMs, f.lastFetchLeaderEnd = req.fetchOffset, nowMs, end
	var change *isrChange
	if r.proposed == nil && !slices.Contains(r.isr, req.replicaID) &&
		f.leo >= c.hw && f.leo >= r.epochStart {
		change = c.propose(append(slices.Clone(r.isr), req.replicaID))
	}
	c.advanceHW()
	ans.hw, ans.readTo = c.hw, end
	return ans, change, c.release()
}

func (c *partitionCore) propose(isr []int32) *isrChange {
	slices.Sort(isr)
	c.repl.proposed = isr
	return &isrChange{epoch: c.leaderEpoch, isr: slices.Clone(isr)}
}

// maybeShrinkISR proposes removing the followers that have not caught up
// with the leader's log end for longer than replica.lag.time.max.ms. The
// leader itself is never removed. Nothing is proposed while a proposal is
// outstanding.
func (c *partitionCore) maybeShrinkISR(nowMs int64) *isrChange {
	r := &c.repl
	if r.role != roleLeader || r.proposed != nil {
		return nil
	}
	var keep []int32
	for _, id := range r.isr {
		f := r.followers[id]
		if id == r.self || f == nil || nowMs-f.lastCaughtUpMs <= r.lagTimeMs {
			keep = append(keep, id)
		}
	}
	if len(keep) == len(r.isr) {
		return nil
	}
	return c.propose(keep)
}

// isrCommitted adopts the in-sync set the controller recorded for epoch (the
// answer to an isrChange) and returns the replies a smaller set releases.
func (c *partitionCore) isrCommitted(epoch int32, isr []int32) []pendingReply {
	if c.repl.role != roleLeader || epoch != c.leaderEpoch {
		return nil
	}
	c.repl.isr, c.repl.proposed = slices.Clone(isr), nil
	c.advanceHW()
	return c.release()
}

// isrRejected forgets an outstanding proposal the controller refused.
func (c *partitionCore) isrRejected() { c.repl.proposed = nil }

// fetchRequest is the follower's next fetch: from its log end, with the
// epoch of its last batch so the leader can check the histories agree.
func (c *partitionCore) fetchRequest() replicaFetchRequest {
	return replicaFetchRequest{
		replicaID:        c.repl.self,
		leaderEpoch:      c.leaderEpoch,
		fetchOffset:      c.cp.LogEndOffset,
		lastFetchedEpoch: c.lastEpoch(),
		session:          c.repl.session,
	}
}

// handleFetchAnswer turns a fetch answer into what the follower does. An
// answer that is not for the fetch it would send now (an older epoch, a
// duplicate or late delivery: remote is at-most-once and fetches are
// retried) is ignored. An error does nothing: the shell retries or looks up
// the new leader.
func (c *partitionCore) handleFetchAnswer(ans replicaFetchAnswer) (followerStep, error) {
	if c.repl.role != roleFollower || ans.leaderEpoch != c.leaderEpoch || ans.fetchOffset != c.cp.LogEndOffset ||
		ans.session != c.repl.session || ans.err != nil {
		return followerStep{}, nil
	}
	if ans.diverging != nil {
		return followerStep{truncate: c.truncateTo(c.divergenceTruncation(*ans.diverging))}, nil
	}
	ops, err := c.followerAppend(ans.records, ans.hw)
	if err != nil {
		return followerStep{}, err
	}
	if ans.fetchOffset >= ans.readTo {
		// We asked, since the crash, from the leader's log end: we hold all
		// it has, and it knows where we really are.
		c.repl.lostData = false
	}
	return followerStep{appends: ops}, nil
}

// divergenceTruncation is where a follower cuts its log after a diverging
// epoch answer, as Kafka's getOffsetTruncationState does: to the end of the
// leader's epoch, bounded by the end of the same epoch here and our log end;
// to our high watermark when either side does not know the epoch. When our
// largest epoch at or below the leader's is a different one, the cut is only
// to its end and the next fetch checks again.
func (c *partitionCore) divergenceTruncation(d EpochEnd) int64 {
	end := c.cp.LogEndOffset
	switch {
	case d.EndOffset < 0:
		return min(c.hw, end)
	case d.LeaderEpoch < 0:
		return min(d.EndOffset, end)
	}
	own := c.endOffsetForEpoch(d.LeaderEpoch)
	if own.EndOffset < 0 {
		return min(c.hw, end)
	}
	t := min(own.EndOffset, end)
	if own.LeaderEpoch == d.LeaderEpoch {
		t = min(t, d.EndOffset)
	}
	return t
}

// truncateTo asks for the log to be cut back to offset (nil when there is
// nothing past it). The shell performs persistence.Log.Truncate, which also
// cuts the epoch history and producer state, and passes the checkpoint it
// returns to adopt.
func (c *partitionCore) truncateTo(offset int64) *truncateOp {
	if offset >= c.cp.LogEndOffset {
		return nil
	}
	return &truncateOp{endOffset: max(offset, c.cp.LogStartOffset)}
}

// followerAppend checks the batches a follower fetched (CRC, offsets
// contiguous from our log end, epochs not above ours and not going back) and
// returns their appends, offsets and epochs as the leader wrote them; the
// shell performs each and calls applyAppended. Nothing is returned on an
// error. leaderHW is remembered: the follower's high watermark is the smaller
// of it and our durable log end.
func (c *partitionCore) followerAppend(batches []byte, leaderHW int64) ([]*appendOp, error) {
	parts, err := recordbatch.Split(batches)
	if err != nil {
		return nil, err
	}
	cp, last := c.cp, c.lastEpoch()
	var ops []*appendOp
	for _, b := range parts {
		checked, h, err := recordbatch.Check(b)
		switch {
		case err != nil:
			return nil, fmt.Errorf("batch at %d: %w", cp.LogEndOffset, err)
		case h.BaseOffset != cp.LogEndOffset:
			return nil, fmt.Errorf("batch at %d, expected %d", h.BaseOffset, cp.LogEndOffset)
		case h.PartitionLeaderEpoch > c.leaderEpoch || h.PartitionLeaderEpoch < last:
			return nil, fmt.Errorf("batch at %d has epoch %d, outside [%d, %d]", h.BaseOffset, h.PartitionLeaderEpoch, last, c.leaderEpoch)
		}
		ev := &fluxopb.BatchAppended{
			BaseOffset:     h.BaseOffset,
			LastOffset:     h.LastOffset(),
			LeaderEpoch:    h.PartitionLeaderEpoch,
			ProducerId:     max(h.ProducerID, -1),
			ProducerEpoch:  int32(h.ProducerEpoch),
			BaseSequence:   h.BaseSequence,
			LastSequence:   h.LastSequence(),
			MaxTimestamp:   h.MaxTimestamp,
			FirstTimestamp: h.FirstTimestamp,
			Size:           int32(len(b)),
			RecordCount:    h.RecordCount,
		}
		next := persistence.ApplyBatch(cp, ev)
		ops = append(ops, &appendOp{batch: checked, baseOffset: h.BaseOffset, leaderEpoch: h.PartitionLeaderEpoch, event: ev, after: next})
		cp, last = next, h.PartitionLeaderEpoch
	}
	c.repl.leaderHW = leaderHW
	c.followerHW()
	return ops, nil
}

// followerHW raises a follower's high watermark to min(leader's, durable end).
func (c *partitionCore) followerHW() {
	c.setHW(min(c.repl.leaderHW, c.durableEnd))
}
