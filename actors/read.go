package actors

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// PartitionRead is one non-blocking read of a partition, with the offsets
// published when it was made. Err is nil or a *kerr.Error: the partition is
// unknown (UNKNOWN_TOPIC_OR_PARTITION), restarting (NOT_LEADER_OR_FOLLOWER),
// the offset is outside [log start, log end] (OFFSET_OUT_OF_RANGE), or
// storage failed (KAFKA_STORAGE_ERROR).
type PartitionRead struct {
	// Records are whole stored batches as they sit in the segment, the
	// first one holding the requested offset (it may start before it).
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
	LogEndOffset   int64
	LeaderEpoch    int32
	// Changed is closed the next time the partition's published offsets move.
	// It was taken before the read, so a change after the read is never
	// missed. Nil when the partition is not hosted (waiting on it blocks).
	Changed <-chan struct{}
	Err     error
}

// ReadPartition reads committed batches (below the high watermark) from
// offset without waiting and without the partition actor: up to maxBytes,
// but with minOneBatch at least one whole batch even if it is larger
// (KIP-74); without it a first batch larger than maxBytes yields no bytes.
func (n *Node) ReadPartition(topic string, partition int32, offset int64, maxBytes int, minOneBatch bool) PartitionRead {
	h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition})
	if h == nil {
		return PartitionRead{HighWatermark: -1, LogStartOffset: -1, LogEndOffset: -1, LeaderEpoch: -1, Err: kerr.UnknownTopicOrPartition}
	}
	v := h.view
	if !n.leads(h) {
		return PartitionRead{HighWatermark: -1, LogStartOffset: -1, LogEndOffset: -1, LeaderEpoch: v.leaderEpoch.Load(), Err: kerr.NotLeaderForPartition}
	}
	changed := v.waitChan() // before reading the offsets
	res := PartitionRead{
		HighWatermark:  v.hw.Load(),
		LogStartOffset: v.logStart.Load(),
		LogEndOffset:   v.logEnd.Load(),
		LeaderEpoch:    v.leaderEpoch.Load(),
		Changed:        changed,
	}
	log, err := v.currentLog()
	if err != nil {
		res.Err = kerr.NotLeaderForPartition
		return res
	}
	if offset < res.LogStartOffset || offset > res.LogEndOffset {
		res.Err = kerr.OffsetOutOfRange
		return res
	}
	if offset >= res.HighWatermark || maxBytes <= 0 && !minOneBatch {
		return res
	}
	limit := maxBytes
	if limit <= 0 {
		limit = 1
	}
	data, err := log.Read(offset, limit, res.HighWatermark)
	switch {
	case err == nil:
	case errors.Is(err, persistence.ErrOffsetOutOfRange):
		// Retention or DeleteRecords moved the start after we loaded it.
		res.LogStartOffset = v.logStart.Load()
		res.Err = kerr.OffsetOutOfRange
		return res
	case errors.Is(err, persistence.ErrClosed):
		res.Err = kerr.NotLeaderForPartition
		return res
	default:
		n.logger.Warn("read partition", "topic", topic, "partition", partition, "offset", offset, "err", err)
		res.Err = kerr.KafkaStorageError
		return res
	}
	if !minOneBatch && len(data) > maxBytes {
		return res // the first batch alone is over the limit
	}
	res.Records = data
	return res
}

// WaitAny blocks until one of changed is closed, the deadline passes or ctx
// ends. It reports whether a change arrived. Nil channels are ignored.
func WaitAny(ctx context.Context, deadline time.Time, changed []<-chan struct{}) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	live := make([]<-chan struct{}, 0, len(changed))
	for _, c := range changed {
		if c != nil {
			live = append(live, c)
		}
	}
	switch len(live) {
	case 0:
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return false
	case 1:
		select {
		case <-live[0]:
			return true
		case <-t.C:
		case <-ctx.Done():
		}
		return false
	}
	// Take a fast look first: a change often happened while reading.
	for _, c := range live {
		select {
		case <-c:
			return true
		default:
		}
	}
	cases := make([]reflect.SelectCase, 0, len(live)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, c := range live {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}

// EpochEnd is the answer to OffsetForLeaderEpoch for one partition.
type EpochEnd struct {
	LeaderEpoch int32 // the largest epoch <= the requested one, or -1
	EndOffset   int64 // one past the last offset of that epoch, or -1
}

// EndOffsetForEpoch returns where epoch ended in this partition's log, as
// Kafka's leader-epoch cache does: the current epoch ends at the log end; an
// older one at the start offset of the first later epoch, reported with the
// largest known epoch <= the requested one; an epoch before every known one
// with the requested epoch and the start of the first known epoch (the data
// before it is gone); an unknown future epoch or -1 is (-1, -1). Err is nil
// or a *kerr.Error.
func (n *Node) EndOffsetForEpoch(topic string, partition int32, epoch int32) (EpochEnd, error) {
	undefined := EpochEnd{LeaderEpoch: -1, EndOffset: -1}
	h := n.registry.get(persistence.PartitionID{Topic: topic, Partition: partition})
	if h == nil {
		return undefined, kerr.UnknownTopicOrPartition
	}
	log, err := h.view.currentLog()
	if err != nil || !n.leads(h) {
		return undefined, kerr.NotLeaderForPartition
	}
	return epochEnd(log.Checkpoint().GetEpochs(), h.view.leaderEpoch.Load(), h.view.logEnd.Load(), epoch), nil
}

// epochEnd answers EndOffsetForEpoch from the epoch history (epochs with
// data, ascending), the current epoch and the log end.
func epochEnd(history []*fluxopb.EpochStarted, current int32, logEnd int64, epoch int32) EpochEnd {
	if epoch < 0 || epoch > current {
		return EpochEnd{LeaderEpoch: -1, EndOffset: -1}
	}
	if epoch == current {
		return EpochEnd{LeaderEpoch: epoch, EndOffset: logEnd}
	}
	floor := int32(-1)
	for _, e := range history {
		if e.Epoch > epoch {
			if floor < 0 {
				return EpochEnd{LeaderEpoch: epoch, EndOffset: e.StartOffset}
			}
			return EpochEnd{LeaderEpoch: floor, EndOffset: e.StartOffset}
		}
		floor = e.Epoch
	}
	// No later epoch holds data: the requested one runs up to where the
	// current epoch (without data yet) begins, the log end.
	if floor < 0 {
		floor = epoch
	}
	return EpochEnd{LeaderEpoch: floor, EndOffset: logEnd}
}

// CheckLeaderEpoch compares a client's view of the leader epoch with the
// partition's, as Kafka does for requests carrying current_leader_epoch: -1
// is not checked, newer than ours is UNKNOWN_LEADER_EPOCH, older is
// FENCED_LEADER_EPOCH. It returns nil or a *kerr.Error.
func CheckLeaderEpoch(client, ours int32) error {
	switch {
	case client < 0 || client == ours:
		return nil
	case client > ours:
		return kerr.UnknownLeaderEpoch
	default:
		return kerr.FencedLeaderEpoch
	}
}
