package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Messages the partition actor takes besides the protobuf requests. They are
// node-local (never sent over remote), so they are plain Go types.
type (
	// syncedMsg reports that a Sync round covering offsets below upTo ended.
	syncedMsg struct {
		incarnation uint64
		upTo        int64
		err         error
	}
	// truncateMsg removes every offset at or after endOffset.
	truncateMsg struct{ endOffset int64 }
	// advanceStartMsg raises the log start offset (retention).
	advanceStartMsg struct{ offset int64 }
	// checkpointReply answers truncateMsg and advanceStartMsg.
	checkpointReply struct {
		cp  *fluxopb.PartitionCheckpoint
		err error
	}
	// configChanged: the view's settings changed; adopt them.
	configChanged struct{}
	// infoMsg asks for the partition's offsets and size.
	infoMsg struct{}
)

// LogOpener opens a partition's log; *persistence.Store implements it.
type LogOpener interface {
	OpenPartition(id persistence.PartitionID) (persistence.Log, error)
}

// partitionActor is the protoactor shell around partitionCore: it performs the
// appends and syncs the core decides, and answers when the core releases
// replies. A panic anywhere here is handled by the supervisor, which answers
// the failing request with a retriable error and restarts the actor from its
// checkpoint and segments (see supervision.go).
type partitionActor struct {
	id     persistence.PartitionID
	store  LogOpener
	view   *partitionView
	logger *slog.Logger

	incarnation uint64
	log         persistence.Log
	core        *partitionCore

	// Replication (clustered nodes only; hooks nil on a single node).
	hooks  *replicaHooks
	follow followerLoop
	parked []parkedFetch
}

var incarnations atomicCounter

func (a *partitionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *fluxopb.ProduceRequest:
		a.produce(ctx, m)
	case *syncedMsg:
		a.synced(ctx, m)
	case *fluxopb.DeleteRecordsRequest:
		a.deleteRecords(ctx, m)
	case *truncateMsg:
		cp, err := a.log.Truncate(m.endOffset)
		if err == nil {
			a.core.adopt(cp)
			a.publish()
		}
		ctx.Respond(&checkpointReply{cp: cp, err: err})
	case *advanceStartMsg:
		cp, err := a.advanceStart(m.offset)
		ctx.Respond(&checkpointReply{cp: cp, err: err})
	case *configChanged:
		a.core.maxMessageBytes = a.view.maxMessageBytes.Load()
		if a.hooks != nil {
			a.core.setMinISR(a.minISR(), len(a.core.repl.replicas))
		}
	case *infoMsg:
		ctx.Respond(a.info())
	case *roleMsg:
		if a.hooks != nil {
			a.applyRole(ctx, m.st)
		}
	case *replTick:
		if a.hooks != nil {
			a.tick(ctx)
		}
	case *fluxopb.ReplicaFetchRequest:
		if a.hooks == nil {
			respond(ctx, ctx.Sender(), &fluxopb.ReplicaFetchResponse{Topic: m.Topic, Partition: m.Partition, FetchId: m.FetchId, ErrorCode: int32(kerr.NotLeaderForPartition.Code)})
			return
		}
		a.replicaFetch(ctx, m, ctx.Sender(), time.Now().Add(replicaFetchWait))
	case *fluxopb.ReplicaFetchResponse:
		if a.hooks != nil {
			a.fetchAnswered(ctx, m)
		}
	case *isrResult:
		if a.hooks != nil {
			a.isrAnswered(ctx, m)
		}
	case *actor.Restarting:
		a.shutdown(ctx, "partition actor restarting after a failure; retry")
	case *actor.Stopping:
		a.shutdown(ctx, "partition is stopping; retry")
	}
}

// start opens (and so recovers) the log. A failure panics, and the supervisor
// retries with backoff.
func (a *partitionActor) start(ctx actor.Context) {
	a.incarnation = incarnations.next()
	log, err := a.store.OpenPartition(a.id)
	if err != nil {
		panic(fmt.Errorf("partition %s-%d: open: %w", a.id.Topic, a.id.Partition, err))
	}
	a.log = log
	cp := log.Checkpoint()
	a.core = newPartitionCore(cp, a.view.maxMessageBytes.Load())
	if a.hooks != nil {
		// Before the sync below: a clustered replica's high watermark must
		// not jump to its own log end.
		a.prepareReplication()
	}
	// Recovery synced what it found, so all of it is durable.
	a.core.synced(cp.LogEndOffset)
	if a.core.hw < cp.LogStartOffset {
		a.core.hw = cp.LogStartOffset
	}
	a.view.leaderEpoch.Store(a.core.leaderEpoch)
	a.view.leader.Store(a.hooks == nil)
	if a.hooks != nil {
		a.applyCurrentRole(ctx)
	}
	a.view.open(log, a.core.hw, a.core.logStart(), a.core.logEnd())
}

func (a *partitionActor) publish() {
	a.view.publish(a.core.hw, a.core.logStart(), a.core.logEnd())
}

// publishIfMoved publishes when the offsets differ from the view's, so
// every change of the high watermark reaches readers, whatever moved it.
func (a *partitionActor) publishIfMoved() {
	v := a.view
	if v.hw.Load() != a.core.hw || v.logStart.Load() != a.core.logStart() || v.logEnd.Load() != a.core.logEnd() {
		a.publish()
	}
}

func (a *partitionActor) produce(ctx actor.Context, req *fluxopb.ProduceRequest) {
	d := a.core.decideProduce(req)
	if d.append != nil {
		ev, err := a.log.AppendChecked(d.append.batch, d.append.baseOffset, d.append.leaderEpoch, d.append.after)
		if err != nil {
			// The store may hold part of this batch; only a restart and
			// recovery can say. Fail loudly: the supervisor answers the
			// request and restarts us.
			panic(fmt.Errorf("partition %s-%d: append at %d: %w", a.id.Topic, a.id.Partition, d.append.baseOffset, err))
		}
		_ = ev
		a.core.applyAppended(d.append)
		a.view.bytesIn.Add(int64(d.append.event.Size))
		a.view.recordsIn.Add(int64(d.append.event.RecordCount))
		a.view.logEnd.Store(a.core.logEnd())
		inc, self, sys, upTo := a.incarnation, ctx.Self(), ctx.ActorSystem(), a.core.logEnd()
		a.log.Sync(func(err error) {
			sys.Root.Send(self, &syncedMsg{incarnation: inc, upTo: upTo, err: err})
		})
		a.answerParked(ctx, true) // followers long-polling get the batch now
	}
	sender := ctx.Sender()
	if !d.wait {
		respond(ctx, sender, d.reply)
		return
	}
	if a.core.released(d.waitOffset, d.waitAll) {
		a.publishIfMoved() // readers see what is acknowledged
		respond(ctx, sender, d.reply)
		return
	}
	if sender == nil {
		// acks=0: nobody waits, but the reply slot keeps ordering simple.
		a.core.hold(d.waitOffset, d.waitAll, d.reply, nil)
		return
	}
	a.core.hold(d.waitOffset, d.waitAll, d.reply, sender)
}

func (a *partitionActor) synced(ctx actor.Context, m *syncedMsg) {
	if m.incarnation != a.incarnation {
		return // a round from before a restart; recovery re-synced since
	}
	if m.err != nil {
		panic(fmt.Errorf("partition %s-%d: sync: %w", a.id.Topic, a.id.Partition, m.err))
	}
	released := a.core.synced(m.upTo)
	// The high watermark may move with nothing to release (a duplicate
	// retry was answered at once): readers must see it all the same.
	a.publishIfMoved()
	if a.hooks != nil && a.core.repl.role == roleFollower {
		a.sendFetch(ctx)
	}
	for _, p := range released {
		if pid, ok := p.token.(*actor.PID); ok && pid != nil {
			ctx.Send(pid, p.reply)
		}
	}
}

func (a *partitionActor) deleteRecords(ctx actor.Context, m *fluxopb.DeleteRecordsRequest) {
	offset := m.Offset
	if offset == -1 {
		offset = a.core.hw
	}
	if offset < 0 || offset > a.core.hw {
		ctx.Respond(&fluxopb.DeleteRecordsResponse{
			ErrorCode:    int32(kerr.OffsetOutOfRange.Code),
			ErrorMessage: fmt.Sprintf("offset %d is not between 0 and the high watermark %d", offset, a.core.hw),
			LowWatermark: a.core.logStart(),
		})
		return
	}
	cp, err := a.advanceStart(offset)
	if err != nil {
		panic(fmt.Errorf("partition %s-%d: delete records to %d: %w", a.id.Topic, a.id.Partition, offset, err))
	}
	ctx.Respond(&fluxopb.DeleteRecordsResponse{LowWatermark: cp.LogStartOffset})
}

func (a *partitionActor) advanceStart(offset int64) (*fluxopb.PartitionCheckpoint, error) {
	if offset <= a.core.logStart() {
		return a.core.cp, nil
	}
	if offset > a.core.hw {
		offset = a.core.hw
	}
	cp, err := a.log.AdvanceStart(offset)
	if err != nil {
		return nil, err
	}
	a.core.adopt(cp)
	a.publish()
	return cp, nil
}

func (a *partitionActor) info() *fluxopb.PartitionInfo {
	return &fluxopb.PartitionInfo{
		Partition:      a.id.Partition,
		LogStartOffset: a.core.logStart(),
		LogEndOffset:   a.core.logEnd(),
		HighWatermark:  a.core.hw,
		LeaderEpoch:    a.core.leaderEpoch,
		SizeBytes:      a.log.Size(),
	}
}

// shutdown answers every held reply with a retriable error and closes the log.
// It runs in the old incarnation, before a restart or a stop.
func (a *partitionActor) shutdown(ctx actor.Context, why string) {
	a.view.log.Store(nil)
	for _, p := range a.parked {
		ctx.Send(p.sender, &fluxopb.ReplicaFetchResponse{Topic: p.req.Topic, Partition: p.req.Partition, FetchId: p.req.FetchId, ErrorCode: int32(kerr.NotLeaderForPartition.Code)})
	}
	a.parked = nil
	if a.core != nil {
		for _, p := range a.core.failPending(kerr.NotLeaderForPartition, why) {
			if pid, ok := p.token.(*actor.PID); ok && pid != nil {
				ctx.Send(pid, p.reply)
			}
		}
	}
	if a.log != nil {
		if err := a.log.Close(); err != nil {
			a.logger.Warn("partition close", "topic", a.id.Topic, "partition", a.id.Partition, "err", err)
		}
		a.log = nil
	}
	a.view.publish(a.view.hw.Load(), a.view.logStart.Load(), a.view.logEnd.Load())
}

// respond answers sender, if there is one (acks=0 has none).
func respond(ctx actor.Context, sender *actor.PID, msg any) {
	if sender != nil {
		ctx.Send(sender, msg)
	}
}
