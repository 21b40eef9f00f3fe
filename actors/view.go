package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxo-broker/fluxo/persistence"
)

// partitionView is what a partition actor publishes for readers outside its
// mailbox: the open log and the offsets a fetch may read up to. Fetches read
// the segments directly (the actor never copies record bytes) and long-poll on
// changed, which the actor closes and replaces whenever the high watermark
// moves.
type partitionView struct {
	id persistence.PartitionID

	log      atomic.Pointer[logRef]
	hw       atomic.Int64
	logStart atomic.Int64
	logEnd   atomic.Int64
	// maxMessageBytes is the topic's max.message.bytes, kept here so a
	// restarted actor incarnation starts with the current value.
	maxMessageBytes atomic.Int32
	// minInsync is the topic's min.insync.replicas (0: the default).
	minInsync   atomic.Int32
	leaderEpoch atomic.Int32
	// leader: this replica leads the partition (always, on a single node);
	// consumers read only from the leader.
	leader atomic.Bool

	// Traffic since the partition was opened on this node, for metrics:
	// batches appended (in) and sent to consumers (out).
	bytesIn, recordsIn, bytesOut, recordsOut atomic.Int64

	mu      sync.Mutex
	changed chan struct{}
}

// logRef boxes the interface so it can sit in an atomic.Pointer.
type logRef struct{ persistence.Log }

// errPartitionUnavailable: the partition actor is (re)starting or stopped.
var errPartitionUnavailable = errors.New("partition is not available: restarting or stopped")

func newPartitionView(id persistence.PartitionID) *partitionView {
	return &partitionView{id: id, changed: make(chan struct{})}
}

// publish makes new offsets visible and wakes long polls.
func (v *partitionView) publish(hw, logStart, logEnd int64) {
	v.hw.Store(hw)
	v.logStart.Store(logStart)
	v.logEnd.Store(logEnd)
	v.notify()
}

// open makes a (re)opened log readable: offsets first, then the log, so no
// reader sees the log with offsets of another incarnation or none at all.
func (v *partitionView) open(log persistence.Log, hw, logStart, logEnd int64) {
	v.hw.Store(hw)
	v.logStart.Store(logStart)
	v.logEnd.Store(logEnd)
	v.log.Store(&logRef{log})
	v.notify()
}

func (v *partitionView) notify() {
	v.mu.Lock()
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
}

func (v *partitionView) waitChan() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

func (v *partitionView) currentLog() (persistence.Log, error) {
	r := v.log.Load()
	if r == nil {
		return nil, errPartitionUnavailable
	}
	return r.Log, nil
}

// fetchResult is what a read returns with the offsets it saw.
type fetchResult struct {
	records  []byte
	hw       int64
	logStart int64
}

// fetch reads from offset, holding the call until minBytes are readable or
// maxWait passes (Kafka's long poll). Offsets past the log end or below the log
// start are persistence.ErrOffsetOutOfRange.
func (v *partitionView) fetch(ctx context.Context, offset int64, maxBytes, minBytes int, maxWait time.Duration) (fetchResult, error) {
	if minBytes < 1 {
		minBytes = 1
	}
	var deadline <-chan time.Time
	if maxWait > 0 {
		t := time.NewTimer(maxWait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		wait := v.waitChan() // taken before reading, so no wake-up is missed
		res, err := v.readOnce(offset, maxBytes)
		if err != nil && !errors.Is(err, errPartitionUnavailable) && !errors.Is(err, persistence.ErrClosed) {
			return res, err
		}
		if err == nil && (len(res.records) >= minBytes || deadline == nil) {
			return res, nil
		}
		select {
		case <-wait:
		case <-deadline:
			if err != nil {
				return res, errPartitionUnavailable
			}
			return v.readOnce(offset, maxBytes)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

func (v *partitionView) readOnce(offset int64, maxBytes int) (fetchResult, error) {
	res := fetchResult{hw: v.hw.Load(), logStart: v.logStart.Load()}
	log, err := v.currentLog()
	if err != nil {
		return res, err
	}
	if offset < res.logStart || offset > v.logEnd.Load() {
		return res, persistence.ErrOffsetOutOfRange
	}
	if offset >= res.hw {
		return res, nil
	}
	res.records, err = log.Read(offset, maxBytes, res.hw)
	return res, err
}
