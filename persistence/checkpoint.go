package persistence

import (
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// ProducerBatchesKept is how many batches per producer id a partition
// remembers for idempotence; Kafka keeps five (max.in.flight per connection).
const ProducerBatchesKept = 5

// NewCheckpoint is the state of an empty partition.
func NewCheckpoint() *fluxopb.PartitionCheckpoint {
	return &fluxopb.PartitionCheckpoint{MaxTimestamp: -1}
}

// ApplyBatch returns cp advanced past the appended batch ev: log end offset,
// max timestamp, epoch history and idempotent producer state. It is the one
// definition of how a batch changes partition state, used by the partition
// actor's step function and by recovery alike. cp is not modified.
func ApplyBatch(cp *fluxopb.PartitionCheckpoint, ev *fluxopb.BatchAppended) *fluxopb.PartitionCheckpoint {
	next := proto.Clone(cp).(*fluxopb.PartitionCheckpoint)
	next.LogEndOffset = ev.LastOffset + 1
	if ev.MaxTimestamp > next.MaxTimestamp {
		next.MaxTimestamp = ev.MaxTimestamp
	}
	if n := len(next.Epochs); ev.LeaderEpoch >= 0 && (n == 0 || next.Epochs[n-1].Epoch < ev.LeaderEpoch) {
		next.Epochs = append(next.Epochs, &fluxopb.EpochStarted{Epoch: ev.LeaderEpoch, StartOffset: ev.BaseOffset})
		if ev.LeaderEpoch > next.LeaderEpoch {
			next.LeaderEpoch = ev.LeaderEpoch
		}
	}
	if ev.ProducerId >= 0 {
		var ps *fluxopb.ProducerState
		for _, p := range next.Producers {
			if p.ProducerId == ev.ProducerId {
				ps = p
				break
			}
		}
		if ps == nil {
			ps = &fluxopb.ProducerState{ProducerId: ev.ProducerId}
			next.Producers = append(next.Producers, ps)
		}
		if ev.ProducerEpoch != ps.ProducerEpoch {
			ps.Batches = nil // a new epoch starts sequences again
		}
		ps.ProducerEpoch = ev.ProducerEpoch
		ps.LastTimestamp = ev.MaxTimestamp
		ps.Batches = append(ps.Batches, &fluxopb.SequenceEntry{
			FirstSequence: ev.BaseSequence,
			LastSequence:  ev.LastSequence,
			BaseOffset:    ev.BaseOffset,
			LastOffset:    ev.LastOffset,
			Timestamp:     ev.MaxTimestamp,
		})
		if len(ps.Batches) > ProducerBatchesKept {
			ps.Batches = ps.Batches[len(ps.Batches)-ProducerBatchesKept:]
		}
	}
	return next
}

// TruncatedCheckpoint is cp cut back to newEnd as Log.Truncate cuts it: the
// epochs starting at or after newEnd and the producer batches ending at or
// after it are dropped (a producer left with none is forgotten), and maxTS is
// the remaining log's largest timestamp. cp is not modified. For step-function
// tests that model a log in memory.
func TruncatedCheckpoint(cp *fluxopb.PartitionCheckpoint, newEnd, maxTS int64) *fluxopb.PartitionCheckpoint {
	return truncatedCheckpoint(cp, newEnd, maxTS)
}
