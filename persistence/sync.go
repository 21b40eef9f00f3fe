package persistence

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit, per segment. Each segment has a syncer: a Sync that arrives
// while an fdatasync of the segment is running waits for the next one, which
// starts as soon as the running one ends and serves every Sync that arrived
// meanwhile. Segments of different partitions sync concurrently, so the
// kernel overlaps their flushes (measured here: rounds that waited for the
// slowest of N files reached 38-63% of independent per-file fsyncs with 8
// partitions; per-segment coalescing removes that wait).
type syncer struct {
	mu      sync.Mutex
	running bool
	waiting []func(error)
}

// enqueueSync calls done once every segment in dirty has been fdatasynced
// after the call (or with the first error). An empty dirty list waits for a
// sync of the active segment, so done never fires before a sync already in
// flight for this log.
func (s *Store) enqueueSync(l *partitionLog, dirty []*segment, done func(error)) {
	if len(dirty) == 0 {
		if a := l.active(); a != nil {
			dirty = []*segment{a}
		} else {
			go done(l.failure())
			return
		}
	}
	var (
		remaining atomic.Int32
		errMu     sync.Mutex
		firstErr  error
	)
	remaining.Store(int32(len(dirty)))
	one := func(err error) {
		if err != nil {
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
		}
		if remaining.Add(-1) == 0 {
			errMu.Lock()
			err := firstErr
			errMu.Unlock()
			if err == nil {
				err = l.failure()
			}
			done(err)
		}
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.cclosed {
		go done(fmt.Errorf("persistence: sync %s-%d: %w", l.id.Topic, l.id.Partition, ErrClosed))
		return
	}
	for _, sg := range dirty {
		s.requestSync(l, sg, one)
	}
}

// requestSync queues cb for the next fdatasync of sg, starting the segment's
// sync loop if it is idle. Called with s.cmu held, so Close's Wait cannot
// race an Add.
func (s *Store) requestSync(l *partitionLog, sg *segment, cb func(error)) {
	sg.syncer.mu.Lock()
	defer sg.syncer.mu.Unlock()
	sg.syncer.waiting = append(sg.syncer.waiting, cb)
	if sg.syncer.running {
		return
	}
	sg.syncer.running = true
	s.syncs.Add(1)
	go s.syncLoop(l, sg)
}

// syncLoop fdatasyncs sg until no Sync is waiting. A failed sync fails the
// log for good: after an fsync error the page cache cannot be trusted
// (fsyncgate), so the log refuses further appends.
func (s *Store) syncLoop(l *partitionLog, sg *segment) {
	defer s.syncs.Done()
	for {
		sg.syncer.mu.Lock()
		batch := sg.syncer.waiting
		sg.syncer.waiting = nil
		if len(batch) == 0 {
			sg.syncer.running = false
			sg.syncer.mu.Unlock()
			return
		}
		sg.syncer.mu.Unlock()
		err := sg.syncData()
		s.segmentSyncs.Add(1)
		if err != nil {
			err = fmt.Errorf("persistence: sync %s: %w", sg.path, err)
			l.fail(err)
		}
		for _, cb := range batch {
			cb(err)
		}
	}
}
