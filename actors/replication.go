package actors

import (
	"context"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// The partition actor's replication shell: it applies the roles the
// controller writes (roleMsg), runs the follower's fetch loop against the
// leader's partition actor over protoactor remote, answers followers'
// fetches on the leader (parking them while there is nothing new: a long
// poll), and records in-sync set changes in the coordination store. The
// decisions are partitionCore's (replication_core.go).

// Replication tunables. A fetch is long-polled for replicaFetchWait on the
// leader; one unanswered for replicaFetchTimeout is taken as lost (remote is
// at-most-once) and sent again.
const (
	replicaFetchWait     = 500 * time.Millisecond
	replicaFetchTimeout  = 5 * time.Second
	replicaFetchMaxBytes = 8 << 20
	replicaRetryBackoff  = 100 * time.Millisecond
)

type (
	// roleMsg: the partition's state in the coordination store changed (or
	// the actor asks itself to re-read it after a start).
	roleMsg struct{ st *fluxopb.PartitionState }
	// replTick drives the follower's retries and the leader's ISR shrink
	// and long-poll expiry.
	replTick struct{}
	// isrResult answers an in-sync set change sent to the store.
	isrResult struct {
		st  *fluxopb.PartitionState
		err error
	}
)

// replicaHooks connect a clustered partition actor to its node.
type replicaHooks struct {
	self      int32
	lagTimeMs int64
	minISR    int
	// mayHaveLostData: writes are acknowledged before fsync (SyncNever), so
	// a restarted replica may miss acknowledged records.
	mayHaveLostData bool
	state           func(topic string, p int32) *fluxopb.PartitionState
	brokerPID       func(nodeID int32) *actor.PID
	alterISR        func(ctx context.Context, topic string, p, leader, epoch int32, isr []int32) (*fluxopb.PartitionState, error)
	logRole         func(topic string, p int32, role string, epoch, leader int32)
}

// parkedFetch is a follower's fetch the leader holds until there is
// something to send or its wait ends.
type parkedFetch struct {
	req      *fluxopb.ReplicaFetchRequest
	sender   *actor.PID
	deadline time.Time
}

// followerLoop is the follower's fetch state.
type followerLoop struct {
	fetchID  uint64
	inFlight bool
	sentAt   time.Time
	retryAt  time.Time
}

// prepareReplication sets a clustered replica's identity: it starts as a
// follower of nobody, until its recorded role is applied.
func (a *partitionActor) prepareReplication() {
	h := a.hooks
	a.core.configureReplication(h.self, h.lagTimeMs, a.minISR())
	a.core.awaitRole()
	a.core.repl.session = a.incarnation
	if h.mayHaveLostData && a.core.logEnd() > 0 {
		// An empty log (a new partition) has nothing it could have lost.
		a.core.markLostData(a.incarnation)
	}
}

// minISR is the topic's min.insync.replicas, else the node's default (0:
// 2 with three or more replicas, else 1).
func (a *partitionActor) minISR() int {
	if m := a.view.minInsync.Load(); m > 0 {
		return int(m)
	}
	return a.hooks.minISR
}

// applyCurrentRole applies the role the coordination store records now.
func (a *partitionActor) applyCurrentRole(ctx actor.Context) {
	if st := a.hooks.state(a.id.Topic, a.id.Partition); st != nil {
		a.applyRole(ctx, st)
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

// applyRole makes this replica the leader or a follower as st says.
func (a *partitionActor) applyRole(ctx actor.Context, st *fluxopb.PartitionState) {
	h := a.hooks
	if !slices.Contains(st.Replicas, h.self) {
		return
	}
	c := a.core
	if st.Leader == h.self {
		wasLeader := c.repl.role == roleLeader && c.repl.assigned && c.leaderEpoch == st.LeaderEpoch
		released, err := c.becomeLeader(st.LeaderEpoch, st.Replicas, st.Isr, nowMs())
		if err != nil {
			a.logger.Warn("partition: cannot lead", "topic", a.id.Topic, "partition", a.id.Partition, "epoch", st.LeaderEpoch, "err", err)
			return
		}
		if wasLeader && c.repl.proposed == nil && !slices.Equal(c.repl.isr, st.Isr) {
			released = append(released, c.isrCommitted(st.LeaderEpoch, st.Isr)...)
		}
		if !wasLeader {
			h.logRole(a.id.Topic, a.id.Partition, "leader", st.LeaderEpoch, st.Leader)
		}
		a.follow = followerLoop{}
		a.view.leader.Store(true)
		a.view.leaderEpoch.Store(c.leaderEpoch)
		a.publish()
		a.sendReplies(ctx, released)
		return
	}
	same := c.repl.assigned && c.repl.role == roleFollower && c.leaderEpoch == st.LeaderEpoch && c.repl.leader == st.Leader
	failed, err := c.becomeFollower(st.LeaderEpoch, st.Leader)
	if err != nil {
		return // an older epoch than ours: a stale watch delivery
	}
	if !same {
		a.view.leader.Store(false)
		a.view.leaderEpoch.Store(c.leaderEpoch)
		a.sendReplies(ctx, failed)
		a.answerParked(ctx, true)
		a.follow.inFlight = false
		h.logRole(a.id.Topic, a.id.Partition, "follower", st.LeaderEpoch, st.Leader)
		a.publish()
	}
	a.sendFetch(ctx)
}

func (a *partitionActor) sendReplies(ctx actor.Context, ps []pendingReply) {
	for _, p := range ps {
		if pid, ok := p.token.(*actor.PID); ok && pid != nil {
			ctx.Send(pid, p.reply)
		}
	}
}

// sendFetch sends the follower's next fetch, if it follows a leader, has
// none in flight, and holds nothing unsynced (a fetch offset tells the
// leader everything below it is durable here).
func (a *partitionActor) sendFetch(ctx actor.Context) {
	c, f := a.core, &a.follow
	if c.repl.role != roleFollower || c.repl.leader < 0 || f.inFlight || c.durableEnd < c.logEnd() || time.Now().Before(f.retryAt) {
		return
	}
	pid := a.hooks.brokerPID(c.repl.leader)
	if pid == nil {
		f.retryAt = time.Now().Add(replicaRetryBackoff)
		return
	}
	r := c.fetchRequest()
	f.fetchID++
	f.inFlight, f.sentAt = true, time.Now()
	ctx.Request(pid, &fluxopb.ReplicaFetchRequest{
		Topic: a.id.Topic, Partition: a.id.Partition,
		ReplicaId: r.replicaID, LeaderEpoch: r.leaderEpoch, FetchOffset: r.fetchOffset,
		LastFetchedEpoch: r.lastFetchedEpoch, Session: r.session, FetchId: f.fetchID,
		MaxBytes: replicaFetchMaxBytes,
	})
}

// fetchAnswered handles the leader's answer on the follower.
func (a *partitionActor) fetchAnswered(ctx actor.Context, m *fluxopb.ReplicaFetchResponse) {
	f := &a.follow
	if !f.inFlight || m.FetchId != f.fetchID {
		return // late or duplicate: the fetch was sent again since
	}
	f.inFlight = false
	ans := replicaFetchAnswer{
		leaderEpoch: m.LeaderEpoch, fetchOffset: m.FetchOffset, session: m.Session,
		readTo: m.ReadTo, hw: m.HighWatermark, logStart: m.LogStartOffset, records: m.Records,
	}
	if m.ErrorCode != 0 {
		ans.err = kerr.ErrorForCode(int16(m.ErrorCode)).(*kerr.Error)
		f.retryAt = time.Now().Add(replicaRetryBackoff)
		return
	}
	if m.Diverging {
		ans.diverging = &EpochEnd{LeaderEpoch: m.DivergingEpoch, EndOffset: m.DivergingEndOffset}
	}
	step, err := a.core.handleFetchAnswer(ans)
	if err != nil {
		a.logger.Warn("partition: bad fetch answer", "topic", a.id.Topic, "partition", a.id.Partition, "err", err)
		f.retryAt = time.Now().Add(replicaRetryBackoff)
		return
	}
	if step.truncate != nil {
		cp, err := a.log.Truncate(step.truncate.endOffset)
		if err != nil {
			panic(err)
		}
		a.core.adopt(cp)
		a.logger.Info("partition: truncated to the leader's history", "topic", a.id.Topic, "partition", a.id.Partition, "end", cp.LogEndOffset)
		a.publish()
		a.sendFetch(ctx)
		return
	}
	if len(step.appends) == 0 {
		a.publish() // the leader's high watermark may have moved
		a.sendFetch(ctx)
		return
	}
	for _, op := range step.appends {
		if _, err := a.log.AppendChecked(op.batch, op.baseOffset, op.leaderEpoch, op.after); err != nil {
			panic(err)
		}
		a.core.applyAppended(op)
	}
	a.view.logEnd.Store(a.core.logEnd())
	a.syncLog(ctx)
}

// syncLog asks for a sync of everything appended; syncedMsg follows.
func (a *partitionActor) syncLog(ctx actor.Context) {
	inc, self, sys, upTo := a.incarnation, ctx.Self(), ctx.ActorSystem(), a.core.logEnd()
	a.log.Sync(func(err error) {
		sys.Root.Send(self, &syncedMsg{incarnation: inc, upTo: upTo, err: err})
	})
}

// replicaFetch answers a follower's fetch on the leader, or parks it.
func (a *partitionActor) replicaFetch(ctx actor.Context, m *fluxopb.ReplicaFetchRequest, sender *actor.PID, deadline time.Time) {
	if sender == nil {
		return
	}
	req := replicaFetchRequest{
		replicaID: m.ReplicaId, leaderEpoch: m.LeaderEpoch, fetchOffset: m.FetchOffset,
		lastFetchedEpoch: m.LastFetchedEpoch, session: m.Session,
	}
	ans, change, released := a.core.replicaFetch(req, nowMs())
	a.proposeISR(ctx, change)
	a.publishIfMoved()
	a.sendReplies(ctx, released)
	if ans.err == nil && ans.diverging == nil && ans.readTo <= m.FetchOffset && time.Now().Before(deadline) {
		a.parked = append(a.parked, parkedFetch{req: m, sender: sender, deadline: deadline})
		return
	}
	res := &fluxopb.ReplicaFetchResponse{
		Topic: m.Topic, Partition: m.Partition, LeaderEpoch: ans.leaderEpoch,
		FetchOffset: ans.fetchOffset, Session: ans.session, FetchId: m.FetchId,
		ReadTo: ans.readTo, HighWatermark: ans.hw, LogStartOffset: ans.logStart,
	}
	switch {
	case ans.err != nil:
		res.ErrorCode = int32(ans.err.Code)
	case ans.diverging != nil:
		res.Diverging, res.DivergingEpoch, res.DivergingEndOffset = true, ans.diverging.LeaderEpoch, ans.diverging.EndOffset
	case ans.readTo > m.FetchOffset:
		maxBytes := int(m.MaxBytes)
		if maxBytes <= 0 {
			maxBytes = replicaFetchMaxBytes
		}
		data, err := a.log.Read(m.FetchOffset, maxBytes, ans.readTo)
		if err != nil {
			res.ErrorCode = int32(kerr.KafkaStorageError.Code)
			break
		}
		// The buffer is not handed back to the pool: remote encodes the
		// answer later, on its own goroutine.
		res.Records = data
	}
	ctx.Send(sender, res)
}

// answerParked answers the parked fetches: all of them (all, or on a role
// change: each is re-run, so a deposed leader answers NOT_LEADER) or those
// whose wait ended.
func (a *partitionActor) answerParked(ctx actor.Context, all bool) {
	if len(a.parked) == 0 {
		return
	}
	now := time.Now()
	parked := a.parked
	a.parked = nil
	for _, p := range parked {
		if all || !now.Before(p.deadline) {
			a.replicaFetch(ctx, p.req, p.sender, time.Time{})
		} else {
			a.parked = append(a.parked, p)
		}
	}
}

// proposeISR records a change of the in-sync set in the coordination store,
// off the mailbox; the answer comes back as isrResult.
func (a *partitionActor) proposeISR(ctx actor.Context, change *isrChange) {
	if change == nil {
		return
	}
	self, sys, h, id := ctx.Self(), ctx.ActorSystem(), a.hooks, a.id
	go func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := h.alterISR(c, id.Topic, id.Partition, h.self, change.epoch, change.isr)
		sys.Root.Send(self, &isrResult{st: st, err: err})
	}()
}

func (a *partitionActor) isrAnswered(ctx actor.Context, m *isrResult) {
	if m.err != nil {
		a.logger.Warn("partition: in-sync set change refused", "topic", a.id.Topic, "partition", a.id.Partition, "err", m.err)
		a.core.isrRejected()
		return
	}
	released := a.core.isrCommitted(m.st.LeaderEpoch, m.st.Isr)
	a.logger.Info("partition: in-sync set changed", "topic", a.id.Topic, "partition", a.id.Partition, "epoch", m.st.LeaderEpoch, "isr", m.st.Isr)
	a.publishIfMoved()
	a.sendReplies(ctx, released)
}

// tick retries the follower's fetch and expires the leader's long polls and
// lagging followers.
func (a *partitionActor) tick(ctx actor.Context) {
	c, f := a.core, &a.follow
	switch c.repl.role {
	case roleLeader:
		a.proposeISR(ctx, c.maybeShrinkISR(nowMs()))
		a.answerParked(ctx, false)
	case roleFollower:
		if f.inFlight && time.Since(f.sentAt) > replicaFetchTimeout {
			f.inFlight = false
		}
		a.sendFetch(ctx)
	}
	// A missed watch delivery: catch up with the recorded role.
	if st := a.hooks.state(a.id.Topic, a.id.Partition); st != nil && (st.LeaderEpoch > c.leaderEpoch || !c.repl.assigned) {
		a.applyRole(ctx, st)
	}
}
