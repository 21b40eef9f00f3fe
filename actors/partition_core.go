package actors

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// partitionCore is the partition's state machine: it decides what a produce
// does (assign offsets, deduplicate retries of idempotent producers, reject bad
// input) and when replies may go out (once the high watermark passes them). It
// does no I/O and reads no clock, so it is tested without actors or disks; the
// actor shell in partition.go performs the appends and syncs it asks for.
//
// Replication (roles, follower fetches, the in-sync set) is in
// replication_core.go. A partition that was never told its role is the leader
// of a single-replica set, so the high watermark is the durable log end.
type partitionCore struct {
	cp *fluxopb.PartitionCheckpoint // state after every append so far
	// hw is the high watermark: offsets below it are durable on every member
	// of the in-sync set (on a follower: below the leader's and our own).
	hw int64
	// durableEnd is this replica's durable log end: offsets below it survive
	// a crash. It is this replica's LEO in the high-watermark computation.
	durableEnd      int64
	leaderEpoch     int32
	maxMessageBytes int32
	pending         []pendingReply // ascending by waitOffset
	repl            replication
}

// pendingReply is a produce reply held until waitOffset (the batch's last
// offset) is below the high watermark (all: acks=-1) or below the leader's
// durable log end (acks=1).
type pendingReply struct {
	waitOffset int64
	all        bool
	reply      *fluxopb.ProduceResponse
	token      any // the shell's handle to answer (sender PID)
}

// appendOp is an append the core asks the shell to perform.
type appendOp struct {
	batch       recordbatch.Checked
	baseOffset  int64
	leaderEpoch int32
	event       *fluxopb.BatchAppended // without segment position
	after       *fluxopb.PartitionCheckpoint
}

// produceDecision is the outcome of one produce request.
type produceDecision struct {
	// reply goes out at once when append is nil and wait is false.
	reply *fluxopb.ProduceResponse
	// append, when set, must be performed before the reply is queued.
	append *appendOp
	// wait: queue reply until the high watermark passes waitOffset (waitAll,
	// acks=-1 and acks=0) or the leader's durable log end does (acks=1).
	wait       bool
	waitAll    bool
	waitOffset int64
}

func newPartitionCore(cp *fluxopb.PartitionCheckpoint, maxMessageBytes int32) *partitionCore {
	return &partitionCore{
		cp:              cp,
		hw:              cp.HighWatermark,
		durableEnd:      cp.HighWatermark,
		leaderEpoch:     cp.LeaderEpoch,
		maxMessageBytes: maxMessageBytes,
		repl:            singleReplica(),
	}
}

func (c *partitionCore) logEnd() int64   { return c.cp.LogEndOffset }
func (c *partitionCore) logStart() int64 { return c.cp.LogStartOffset }

func errorReply(e *kerr.Error, format string, args ...any) *fluxopb.ProduceResponse {
	return &fluxopb.ProduceResponse{
		ErrorCode:       int32(e.Code),
		ErrorMessage:    fmt.Sprintf(format, args...),
		BaseOffset:      -1,
		LogAppendTimeMs: -1,
	}
}

// decideProduce validates the request's single batch and decides whether it
// is appended, answered as a duplicate, or rejected. Only the leader appends;
// acks=-1 with fewer in-sync replicas than min.insync.replicas is refused
// with NOT_ENOUGH_REPLICAS before anything is appended.
func (c *partitionCore) decideProduce(req *fluxopb.ProduceRequest) produceDecision {
	d := c.decide(req)
	if d.wait {
		d.waitAll = req.Acks != 1
	}
	return d
}

func (c *partitionCore) decide(req *fluxopb.ProduceRequest) produceDecision {
	if c.repl.role != roleLeader {
		return produceDecision{reply: errorReply(kerr.NotLeaderForPartition, "this replica is not the leader of epoch %d", c.leaderEpoch)}
	}
	if req.Acks == -1 && len(c.repl.isr) < c.repl.minISR {
		return produceDecision{reply: errorReply(kerr.NotEnoughReplicas, "%d in-sync replicas, min.insync.replicas is %d", len(c.repl.isr), c.repl.minISR)}
	}
	if int64(len(req.Records)) > int64(c.maxMessageBytes) {
		return produceDecision{reply: errorReply(kerr.MessageTooLarge, "batch of %d bytes exceeds max.message.bytes %d", len(req.Records), c.maxMessageBytes)}
	}
	batch, h, err := recordbatch.Check(req.Records)
	switch {
	case errors.Is(err, recordbatch.ErrCorrupt):
		return produceDecision{reply: errorReply(kerr.CorruptMessage, "record batch CRC32C mismatch")}
	case errors.Is(err, recordbatch.ErrTruncated):
		// Either truncated or several batches: v3+ produce carries exactly one.
		if _, serr := recordbatch.Split(req.Records); serr == nil {
			return produceDecision{reply: errorReply(kerr.InvalidRecord, "a produce request must carry exactly one record batch per partition")}
		}
		return produceDecision{reply: errorReply(kerr.CorruptMessage, "truncated record batch")}
	case err != nil:
		return produceDecision{reply: errorReply(kerr.InvalidRecord, "%v", err)}
	}
	if h.Control() || h.Transactional() {
		return produceDecision{reply: errorReply(kerr.InvalidRecord, "transactional and control batches are not supported yet")}
	}
	res := &fluxopb.ProduceResponse{LogAppendTimeMs: -1, LogStartOffset: c.cp.LogStartOffset}
	if h.Idempotent() {
		if d, done := c.checkSequence(h, res); done {
			return d
		}
	}
	base := c.cp.LogEndOffset
	ev := &fluxopb.BatchAppended{
		BaseOffset:     base,
		LastOffset:     base + int64(h.LastOffsetDelta),
		LeaderEpoch:    c.leaderEpoch,
		ProducerId:     h.ProducerID,
		ProducerEpoch:  int32(h.ProducerEpoch),
		BaseSequence:   h.BaseSequence,
		LastSequence:   h.LastSequence(),
		MaxTimestamp:   h.MaxTimestamp,
		FirstTimestamp: h.FirstTimestamp,
		Size:           int32(len(req.Records)),
		RecordCount:    h.RecordCount,
	}
	res.BaseOffset = base
	return produceDecision{
		reply:      res,
		append:     &appendOp{batch: batch, baseOffset: base, leaderEpoch: c.leaderEpoch, event: ev, after: persistence.ApplyBatch(c.cp, ev)},
		wait:       true,
		waitOffset: ev.LastOffset,
	}
}

// checkSequence applies Kafka's idempotence rules (ProducerStateManager) to an
// idempotent batch. done reports that the decision is final (duplicate or
// error); otherwise the batch is appended.
func (c *partitionCore) checkSequence(h recordbatch.Header, res *fluxopb.ProduceResponse) (produceDecision, bool) {
	var ps *fluxopb.ProducerState
	for _, p := range c.cp.Producers {
		if p.ProducerId == h.ProducerID {
			ps = p
			break
		}
	}
	if ps == nil {
		return produceDecision{}, false // a new producer may start at any sequence
	}
	epoch := int32(h.ProducerEpoch)
	switch {
	case epoch < ps.ProducerEpoch:
		return produceDecision{reply: errorReply(kerr.InvalidProducerEpoch, "producer %d epoch %d is older than %d", h.ProducerID, epoch, ps.ProducerEpoch)}, true
	case epoch > ps.ProducerEpoch:
		if h.BaseSequence != 0 {
			return produceDecision{reply: errorReply(kerr.OutOfOrderSequenceNumber, "producer %d new epoch %d must start at sequence 0, got %d", h.ProducerID, epoch, h.BaseSequence)}, true
		}
		return produceDecision{}, false
	}
	for _, b := range ps.Batches {
		if b.FirstSequence == h.BaseSequence && b.LastSequence == h.LastSequence() {
			// A retry of a batch we hold: answer with its original offset,
			// once it is durable.
			res.BaseOffset = b.BaseOffset
			return produceDecision{reply: res, wait: true, waitOffset: b.LastOffset}, true
		}
	}
	if n := len(ps.Batches); n > 0 {
		last := ps.Batches[n-1].LastSequence
		next := int32((int64(last) + 1) % (1 << 31))
		if h.BaseSequence != next {
			if seqBefore(h.BaseSequence, next) {
				return produceDecision{reply: errorReply(kerr.DuplicateSequenceNumber, "producer %d sequence %d was already written", h.ProducerID, h.BaseSequence)}, true
			}
			return produceDecision{reply: errorReply(kerr.OutOfOrderSequenceNumber, "producer %d expected sequence %d, got %d", h.ProducerID, next, h.BaseSequence)}, true
		}
	}
	return produceDecision{}, false
}

// seqBefore reports whether sequence a comes before b, allowing for the wrap
// at 2^31 (within half the range).
func seqBefore(a, b int32) bool {
	d := (int64(b) - int64(a) + (1 << 31)) % (1 << 31)
	return d > 0 && d < (1<<30)
}

// applyAppended adopts the state after an append the shell performed.
func (c *partitionCore) applyAppended(op *appendOp) {
	c.cp = op.after
}

// enqueue holds an acks=-1 reply until the high watermark passes waitOffset.
func (c *partitionCore) enqueue(waitOffset int64, reply *fluxopb.ProduceResponse, token any) {
	c.hold(waitOffset, true, reply, token)
}

// released reports whether a reply waiting for waitOffset may go out now.
func (c *partitionCore) released(waitOffset int64, all bool) bool {
	if bugAckBeforeHW {
		all = false
	}
	return waitOffset < c.hw || (!all && waitOffset < c.durableEnd)
}

// hold queues a reply until released(waitOffset, all).
func (c *partitionCore) hold(waitOffset int64, all bool, reply *fluxopb.ProduceResponse, token any) {
	if c.released(waitOffset, all) {
		panic("hold of an already released offset: the shell should reply at once")
	}
	p := pendingReply{waitOffset: waitOffset, all: all, reply: reply, token: token}
	i := len(c.pending)
	for i > 0 && c.pending[i-1].waitOffset > waitOffset {
		i--
	}
	c.pending = append(c.pending, pendingReply{})
	copy(c.pending[i+1:], c.pending[i:])
	c.pending[i] = p
}

// synced reports that this replica's log is durable below upTo (bounded by
// the log end): its own LEO advanced. On a leader the high watermark follows
// (the in-sync minimum, see advanceHW); on a follower it is the smaller of the
// leader's and upTo. It returns the replies released, in offset order.
func (c *partitionCore) synced(upTo int64) []pendingReply {
	if upTo > c.cp.LogEndOffset {
		upTo = c.cp.LogEndOffset
	}
	if upTo > c.durableEnd {
		c.durableEnd = upTo
	}
	if c.repl.role == roleLeader {
		c.advanceHW()
	} else {
		c.followerHW()
	}
	return c.release()
}

// setHW raises the high watermark (it never goes down here; truncation
// lowers it through adopt).
func (c *partitionCore) setHW(hw int64) {
	if hw > c.cp.LogEndOffset {
		hw = c.cp.LogEndOffset
	}
	if hw > c.hw {
		c.hw = hw
		c.cp.HighWatermark = hw
	}
}

// release returns the held replies that may go out, in offset order.
func (c *partitionCore) release() []pendingReply {
	var out, keep []pendingReply
	for _, p := range c.pending {
		if c.released(p.waitOffset, p.all) {
			out = append(out, p)
		} else {
			keep = append(keep, p)
		}
	}
	if out == nil {
		return nil
	}
	c.pending = keep
	return out
}

// failPending empties the queue, returning every held reply turned into a
// retriable error (the caller cannot know whether the batch was appended).
func (c *partitionCore) failPending(e *kerr.Error, why string) []pendingReply {
	out := c.pending
	c.pending = nil
	for i := range out {
		out[i].reply = errorReply(e, "%s", why)
	}
	return out
}

// adopt replaces the state after a truncation or log-start change the store
// performed, keeping the high watermark and the durable end within the log.
func (c *partitionCore) adopt(cp *fluxopb.PartitionCheckpoint) {
	c.cp = cp
	if c.hw > cp.LogEndOffset {
		c.hw = cp.LogEndOffset
	}
	if c.hw < cp.LogStartOffset {
		c.hw = cp.LogStartOffset
	}
	if c.durableEnd > cp.LogEndOffset {
		c.durableEnd = cp.LogEndOffset
	}
	cp.HighWatermark = c.hw
}
