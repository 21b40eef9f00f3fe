package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/internal/bufpool"
	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// partitionLog implements Log.
//
// Locking: mu guards the segment list and the bytes of segments against
// structural changes (roll, truncate, retention); readers hold it shared for
// the whole lookup and ReadAt. Appends write past every reader's bound
// (size is published after the write), so they take mu only to roll.
// dirty, runMax and the write path are the actor goroutine's alone.
type partitionLog struct {
	s   *Store
	id  PartitionID
	dir string

	mu   sync.RWMutex
	segs []*segment // sorted by base; the last is active

	cp       atomic.Pointer[fluxopb.PartitionCheckpoint]
	logStart atomic.Int64
	logEnd   atomic.Int64
	closed   atomic.Bool

	errMu  sync.Mutex
	failed error

	// Actor goroutine only.
	dirty  []*segment
	runMax int64 // running max of batch max timestamps (the ts index's last key)
}

func (l *partitionLog) errorf(op string, err error) error {
	return fmt.Errorf("persistence: %s %s-%d: %w", op, l.id.Topic, l.id.Partition, err)
}

func (l *partitionLog) fail(err error) {
	l.errMu.Lock()
	if l.failed == nil {
		l.failed = err
		l.s.log.Error("persistence: log failed; refusing appends", "topic", l.id.Topic, "partition", l.id.Partition, "err", err)
	}
	l.errMu.Unlock()
}

func (l *partitionLog) failure() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.failed
}

func (l *partitionLog) markDirty(sg *segment) {
	for _, d := range l.dirty {
		if d == sg {
			return
		}
	}
	l.dirty = append(l.dirty, sg)
}

func (l *partitionLog) active() *segment {
	if len(l.segs) == 0 {
		return nil
	}
	return l.segs[len(l.segs)-1]
}

// segmentFor returns the segment with the given base, or nil. mu held.
func (l *partitionLog) segmentFor(base int64) *segment {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= base })
	if i < len(l.segs) && l.segs[i].base == base {
		return l.segs[i]
	}
	return nil
}

func (l *partitionLog) roll(base int64) (*segment, error) {
	sg, err := createSegment(l.s.fs, l.dir, base, l.s.opts.SegmentBytes)
	if err != nil {
		return nil, err
	}
	sg.maxTS = l.runMax
	l.mu.Lock()
	l.segs = append(l.segs, sg)
	l.mu.Unlock()
	return sg, nil
}

func eventFromHeader(h recordbatch.Header, seg, pos int64) *fluxopb.BatchAppended {
	ev := &fluxopb.BatchAppended{
		BaseOffset:     h.BaseOffset,
		LastOffset:     h.LastOffset(),
		LeaderEpoch:    h.PartitionLeaderEpoch,
		ProducerId:     h.ProducerID,
		ProducerEpoch:  int32(h.ProducerEpoch),
		BaseSequence:   h.BaseSequence,
		LastSequence:   h.LastSequence(),
		MaxTimestamp:   h.MaxTimestamp,
		SegmentBase:    seg,
		Position:       pos,
		Size:           int32(h.Size()),
		RecordCount:    h.RecordCount,
		FirstTimestamp: h.FirstTimestamp,
	}
	if h.ProducerID < 0 {
		ev.ProducerId = -1
	}
	return ev
}

// indexBatch adds ev's event key and, when it raises the running max, its
// time key to b.
func (l *partitionLog) indexBatch(b *pebble.Batch, ev *fluxopb.BatchAppended, runMax *int64) error {
	v, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if err := b.Set(eventKey(l.id, ev.BaseOffset), v, nil); err != nil {
		return err
	}
	if ev.MaxTimestamp > *runMax {
		*runMax = ev.MaxTimestamp
		var off [8]byte
		binary.BigEndian.PutUint64(off[:], uint64(ev.BaseOffset))
		if err := b.Set(timeKey(l.id, ev.MaxTimestamp, ev.BaseOffset), off[:], nil); err != nil {
			return err
		}
	}
	return nil
}

func (l *partitionLog) Append(batch []byte, baseOffset int64, leaderEpoch int32, cp *fluxopb.PartitionCheckpoint) (*fluxopb.BatchAppended, error) {
	if l.closed.Load() {
		return nil, l.errorf("append", ErrClosed)
	}
	c, _, err := recordbatch.Check(batch)
	if err != nil {
		return nil, l.errorf("append", fmt.Errorf("%w: %w", ErrCorruptBatch, err))
	}
	return l.AppendChecked(c, baseOffset, leaderEpoch, cp)
}

func (l *partitionLog) AppendChecked(c recordbatch.Checked, baseOffset int64, leaderEpoch int32, cp *fluxopb.PartitionCheckpoint) (*fluxopb.BatchAppended, error) {
	batch := c.Bytes()
	if l.closed.Load() {
		return nil, l.errorf("append", ErrClosed)
	}
	if err := l.failure(); err != nil {
		return nil, l.errorf("append", err)
	}
	if len(batch) == 0 {
		return nil, l.errorf("append", fmt.Errorf("%w: no batch", ErrCorruptBatch))
	}
	if end := l.logEnd.Load(); baseOffset != end {
		return nil, l.errorf("append", fmt.Errorf("%w: base offset %d, log end %d", ErrOffsetOutOfRange, baseOffset, end))
	}
	recordbatch.SetBaseOffset(batch, baseOffset)
	recordbatch.SetLeaderEpoch(batch, leaderEpoch)
	h, _ := recordbatch.ParseHeader(batch)

	sg := l.active()
	if sg == nil || (sg.size.Load() > 0 && sg.size.Load()+int64(len(batch)) > l.s.opts.SegmentBytes) {
		var err error
		if sg, err = l.roll(baseOffset); err != nil {
			l.fail(err)
			return nil, l.errorf("append: roll segment", err)
		}
	}
	pos := sg.size.Load()
	if _, err := sg.f.WriteAt(batch, pos); err != nil {
		l.fail(err)
		return nil, l.errorf("append: write segment", err)
	}
	ev := eventFromHeader(h, sg.base, pos)
	b := l.s.db.NewBatch()
	defer b.Close()
	runMax := l.runMax
	err := l.indexBatch(b, ev, &runMax)
	if err == nil && cp != nil {
		var v []byte
		if v, err = proto.Marshal(cp); err == nil {
			err = b.Set(stateKey(l.id), v, nil)
		}
	}
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		l.fail(err)
		return nil, l.errorf("append: index", err)
	}
	l.runMax = runMax
	sg.size.Store(pos + int64(len(batch)))
	l.mu.Lock()
	sg.next = ev.LastOffset + 1
	sg.maxTS = runMax
	l.mu.Unlock()
	if cp != nil {
		l.cp.Store(proto.Clone(cp).(*fluxopb.PartitionCheckpoint))
	}
	l.markDirty(sg)
	l.logEnd.Store(ev.LastOffset + 1)
	return ev, nil
}

func (l *partitionLog) Sync(done func(error)) {
	if l.closed.Load() {
		go done(l.errorf("sync", ErrClosed))
		return
	}
	if err := l.failure(); err != nil {
		go done(l.errorf("sync", err))
		return
	}
	if l.s.opts.Sync == SyncNever {
		l.dirty = l.dirty[:0]
		go done(nil)
		return
	}
	dirty := l.dirty
	l.dirty = nil
	l.s.enqueueSync(l, dirty, done)
}

// lookup returns the event of the batch holding offset (the last event with
// base <= offset), or nil.
func (l *partitionLog) lookup(offset int64) (*fluxopb.BatchAppended, error) {
	lower := partitionPrefix(kindEvent, l.id)
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: eventKey(l.id, offset+1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.Last() {
		return nil, it.Error()
	}
	ev := &fluxopb.BatchAppended{}
	if err := proto.Unmarshal(it.Value(), ev); err != nil {
		return nil, err
	}
	return ev, nil
}

func (l *partitionLog) Read(offset int64, maxBytes int, upTo int64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed.Load() {
		return nil, l.errorf("read", ErrClosed)
	}
	start, end := l.logStart.Load(), l.logEnd.Load()
	if offset < start || offset > end {
		return nil, l.errorf("read", fmt.Errorf("%w: offset %d, log [%d, %d)", ErrOffsetOutOfRange, offset, start, end))
	}
	if offset == end || offset >= upTo {
		return nil, nil
	}
	ev, err := l.lookup(offset)
	if err != nil {
		return nil, l.errorf("read", err)
	}
	if ev == nil || ev.LastOffset < offset {
		return nil, l.errorf("read", fmt.Errorf("%w: no batch holds offset %d", ErrOffsetOutOfRange, offset))
	}
	if ev.LastOffset >= upTo {
		return nil, nil
	}
	sg := l.segmentFor(ev.SegmentBase)
	if sg == nil {
		return nil, l.errorf("read", fmt.Errorf("%w: segment %d of offset %d is gone", ErrOffsetOutOfRange, ev.SegmentBase, offset))
	}
	avail := sg.size.Load() - ev.Position
	n := min(int64(max(maxBytes, int(ev.Size))), avail)
	if n < int64(ev.Size) {
		return nil, l.errorf("read", fmt.Errorf("batch at %d past segment end", ev.BaseOffset))
	}
	buf := bufpool.Get(int(n))
	if rn, err := sg.f.ReadAt(buf, ev.Position); rn < len(buf) {
		bufpool.Put(buf)
		return nil, l.errorf("read", fmt.Errorf("short read at %d: %w", ev.Position, err))
	}
	// Cut at whole batches: dense offsets from ev.BaseOffset, last offset
	// below upTo, within maxBytes except for the first.
	p, want := 0, ev.BaseOffset
	for p+recordbatch.HeaderSize <= len(buf) {
		h, err := recordbatch.ParseHeader(buf[p:])
		if err != nil || h.BaseOffset != want || h.LastOffset() >= upTo || (p > 0 && p+h.Size() > maxBytes) {
			break
		}
		p += h.Size()
		want = h.LastOffset() + 1
	}
	if p == 0 {
		bufpool.Put(buf)
		return nil, l.errorf("read", fmt.Errorf("batch at offset %d unreadable", ev.BaseOffset))
	}
	return buf[:p], nil
}

func (l *partitionLog) FindBatch(offset int64) (*fluxopb.BatchAppended, error) {
	start, end := l.logStart.Load(), l.logEnd.Load()
	if offset < start || offset >= end {
		return nil, l.errorf("find batch", fmt.Errorf("%w: offset %d, log [%d, %d)", ErrOffsetOutOfRange, offset, start, end))
	}
	ev, err := l.lookup(offset)
	if err != nil {
		return nil, l.errorf("find batch", err)
	}
	if ev == nil || ev.LastOffset < offset {
		return nil, l.errorf("find batch", fmt.Errorf("%w: offset %d", ErrOffsetOutOfRange, offset))
	}
	return ev, nil
}

func (l *partitionLog) OffsetForTimestamp(ts int64) (int64, int64, error) {
	if l.closed.Load() {
		return 0, 0, l.errorf("offset for timestamp", ErrClosed)
	}
	prefix := partitionPrefix(kindTime, l.id)
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, 0, l.errorf("offset for timestamp", err)
	}
	defer it.Close()
	if !it.SeekGE(timeKeyFloor(l.id, ts)) {
		if err := it.Error(); err != nil {
			return 0, 0, l.errorf("offset for timestamp", err)
		}
		return 0, 0, l.errorf("offset for timestamp", ErrNotFound)
	}
	ets, base := decodeTimeKey(it.Key())
	if it.Prev() {
		// Batches between the previous entry and this one have max
		// timestamps <= the previous entry's < ts: base is the answer.
		return base, ets, nil
	}
	// No earlier entry (it may have gone with retention): an earlier
	// batch may still qualify.
	start := l.logStart.Load()
	eit, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(l.id, 0), UpperBound: eventKey(l.id, base)})
	if err != nil {
		return 0, 0, l.errorf("offset for timestamp", err)
	}
	defer eit.Close()
	for ok := eit.SeekLT(eventKey(l.id, start+1)); ok || eit.First(); ok = eit.Next() {
		ev := &fluxopb.BatchAppended{}
		if err := proto.Unmarshal(eit.Value(), ev); err != nil {
			return 0, 0, l.errorf("offset for timestamp", err)
		}
		if ev.LastOffset >= start && ev.MaxTimestamp >= ts {
			return ev.BaseOffset, ev.MaxTimestamp, nil
		}
	}
	return base, ets, nil
}

func (l *partitionLog) Checkpoint() *fluxopb.PartitionCheckpoint {
	return proto.Clone(l.cp.Load()).(*fluxopb.PartitionCheckpoint)
}

func (l *partitionLog) LogStart() int64 { return l.logStart.Load() }
func (l *partitionLog) LogEnd() int64   { return l.logEnd.Load() }

func (l *partitionLog) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, sg := range l.segs {
		n += sg.size.Load()
	}
	return n
}

func (l *partitionLog) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, sg := range l.segs {
		ts := sg.maxTS
		if sg.next == sg.base {
			ts = -1
		}
		out[i] = SegmentInfo{BaseOffset: sg.base, NextOffset: sg.next, Bytes: sg.size.Load(), MaxTimestamp: ts, Active: i == len(l.segs)-1}
	}
	return out
}

// truncatedCheckpoint is old cut back to newEnd: epochs starting at or after
// newEnd and producer batches ending at or after it are dropped (a producer
// left with no batch is forgotten), and maxTS is the remaining log's.
func truncatedCheckpoint(old *fluxopb.PartitionCheckpoint, newEnd, maxTS int64) *fluxopb.PartitionCheckpoint {
	cp := proto.Clone(old).(*fluxopb.PartitionCheckpoint)
	cp.LogEndOffset = newEnd
	if cp.LogStartOffset > newEnd {
		cp.LogStartOffset = newEnd
	}
	if cp.HighWatermark > newEnd {
		cp.HighWatermark = newEnd
	}
	cp.MaxTimestamp = maxTS
	var epochs []*fluxopb.EpochStarted
	for _, e := range cp.Epochs {
		if e.StartOffset < newEnd {
			epochs = append(epochs, e)
		}
	}
	cp.Epochs = epochs
	var producers []*fluxopb.ProducerState
	for _, p := range cp.Producers {
		var kept []*fluxopb.SequenceEntry
		for _, b := range p.Batches {
			if b.LastOffset < newEnd {
				kept = append(kept, b)
			}
		}
		if len(kept) == 0 && len(p.Batches) > 0 {
			continue
		}
		p.Batches = kept
		if len(kept) > 0 {
			p.LastTimestamp = kept[len(kept)-1].Timestamp
		}
		producers = append(producers, p)
	}
	cp.Producers = producers
	return cp
}

// cutIndex adds to b the deletion of every event and time key at or past
// newEnd, and returns the running max timestamp of what remains.
func (l *partitionLog) cutIndex(b *pebble.Batch, newEnd int64) (int64, error) {
	ep := partitionPrefix(kindEvent, l.id)
	if err := b.DeleteRange(eventKey(l.id, newEnd), prefixEnd(ep), nil); err != nil {
		return 0, err
	}
	tp := partitionPrefix(kindTime, l.id)
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: tp, UpperBound: prefixEnd(tp)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var cut []byte
	maxTS := int64(-1)
	for ok := it.Last(); ok; ok = it.Prev() {
		ts, base := decodeTimeKey(it.Key())
		if base < newEnd {
			maxTS = ts
			break
		}
		cut = append(cut[:0], it.Key()...)
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	if cut != nil {
		if err := b.DeleteRange(cut, prefixEnd(tp), nil); err != nil {
			return 0, err
		}
	}
	return maxTS, nil
}

func (l *partitionLog) Truncate(endOffset int64) (*fluxopb.PartitionCheckpoint, error) {
	if l.closed.Load() {
		return nil, l.errorf("truncate", ErrClosed)
	}
	if err := l.failure(); err != nil {
		return nil, l.errorf("truncate", err)
	}
	start, end := l.logStart.Load(), l.logEnd.Load()
	if endOffset >= end {
		return l.Checkpoint(), nil
	}
	if endOffset < start {
		return nil, l.errorf("truncate", fmt.Errorf("%w: end %d below log start %d", ErrOffsetOutOfRange, endOffset, start))
	}
	ev, err := l.lookup(endOffset)
	if err != nil {
		return nil, l.errorf("truncate", err)
	}
	if ev == nil || ev.LastOffset < endOffset {
		return nil, l.errorf("truncate", fmt.Errorf("no batch holds offset %d", endOffset))
	}
	newEnd := ev.BaseOffset
	if newEnd < start {
		return nil, l.errorf("truncate", fmt.Errorf("%w: batch at %d straddles log start %d", ErrOffsetOutOfRange, newEnd, start))
	}
	// The index is committed with a sync below; the bytes it keeps pointing
	// at must be durable first, or a crash leaves it ahead of the segments
	// anywhere, not just at the tail recovery checks.
	for _, sg := range l.dirty {
		if err := l.syncSegment(sg); err != nil {
			return nil, l.errorf("truncate", err)
		}
	}
	if err := l.cutSegments(ev.SegmentBase, ev.Position, newEnd); err != nil {
		l.fail(err)
		return nil, l.errorf("truncate", err)
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	maxTS, err := l.cutIndex(b, newEnd)
	if err != nil {
		return nil, l.errorf("truncate", err)
	}
	cp := truncatedCheckpoint(l.cp.Load(), newEnd, maxTS)
	v, err := proto.Marshal(cp)
	if err == nil {
		if err = b.Set(stateKey(l.id), v, nil); err == nil {
			err = b.Commit(pebble.Sync)
		}
	}
	if err != nil {
		l.fail(err)
		return nil, l.errorf("truncate", err)
	}
	l.runMax = maxTS
	l.mu.Lock()
	if a := l.active(); a != nil {
		a.maxTS = maxTS
	}
	l.mu.Unlock()
	l.cp.Store(cp)
	l.logEnd.Store(newEnd)
	return l.Checkpoint(), nil
}

// cutSegments durably removes every byte from (segBase, pos) on: it zeroes
// the rest of that segment and deletes the later ones. The index is cut by
// the caller afterwards, so a crash in between leaves an index ahead of the
// segments, which recovery repairs.
func (l *partitionLog) cutSegments(segBase, pos, newEnd int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= segBase })
	if i == len(l.segs) || l.segs[i].base != segBase {
		return fmt.Errorf("segment %d missing", segBase)
	}
	sg := l.segs[i]
	if err := zeroTail(sg.f, pos); err != nil {
		return err
	}
	if err := sg.f.SyncData(); err != nil {
		return err
	}
	for _, later := range l.segs[i+1:] {
		if err := later.close(); err != nil {
			return err
		}
		if err := l.s.fs.Remove(later.path); err != nil {
			return err
		}
	}
	if len(l.segs) > i+1 {
		if err := syncDir(l.s.fs, l.dir); err != nil {
			return err
		}
	}
	l.segs = l.segs[:i+1]
	sg.size.Store(pos)
	sg.next = newEnd
	var dirty []*segment
	for _, d := range l.dirty {
		if !d.closed {
			dirty = append(dirty, d)
		}
	}
	l.dirty = dirty
	return nil
}

func (l *partitionLog) AdvanceStart(offset int64) (*fluxopb.PartitionCheckpoint, error) {
	if l.closed.Load() {
		return nil, l.errorf("advance start", ErrClosed)
	}
	if err := l.failure(); err != nil {
		return nil, l.errorf("advance start", err)
	}
	start, end := l.logStart.Load(), l.logEnd.Load()
	if offset > end {
		return nil, l.errorf("advance start", fmt.Errorf("%w: %d past log end %d", ErrOffsetOutOfRange, offset, end))
	}
	if offset <= start {
		return l.Checkpoint(), nil
	}
	// Make the data up to the new start durable before the index says the
	// start moved, so a crash cannot leave a log end below the start.
	for _, sg := range l.dirty {
		if err := l.syncSegment(sg); err != nil {
			return nil, l.errorf("advance start", err)
		}
	}
	if a := l.active(); a != nil && a.next > a.base && a.next <= offset {
		// All of the active segment is below: roll so it can go.
		if _, err := l.roll(end); err != nil {
			l.fail(err)
			return nil, l.errorf("advance start: roll", err)
		}
	}
	l.mu.RLock()
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1].base <= offset {
		n++
	}
	doomed := append([]*segment(nil), l.segs[:n]...)
	l.mu.RUnlock()

	cp := proto.Clone(l.cp.Load()).(*fluxopb.PartitionCheckpoint)
	cp.LogStartOffset = offset
	if cp.HighWatermark < offset {
		cp.HighWatermark = offset
	}
	b := l.s.db.NewBatch()
	defer b.Close()
	var err error
	if n > 0 {
		keep := l.segs[n].base
		err = b.DeleteRange(partitionPrefix(kindEvent, l.id), eventKey(l.id, keep), nil)
		if last := doomed[n-1]; err == nil && last.maxTS >= 0 {
			tp := partitionPrefix(kindTime, l.id)
			// Time keys are monotonic in offset too: those of the doomed
			// segments are exactly those with ts <= their running max.
			err = b.DeleteRange(tp, timeKeyFloor(l.id, last.maxTS+1), nil)
		}
	}
	if err == nil {
		var v []byte
		if v, err = proto.Marshal(cp); err == nil {
			if err = b.Set(stateKey(l.id), v, nil); err == nil {
				err = b.Commit(pebble.Sync)
			}
		}
	}
	if err != nil {
		l.fail(err)
		return nil, l.errorf("advance start", err)
	}
	l.cp.Store(cp)
	l.logStart.Store(offset)
	if n > 0 {
		l.mu.Lock()
		l.segs = append([]*segment(nil), l.segs[n:]...)
		l.mu.Unlock()
		var errs []error
		for _, sg := range doomed {
			errs = append(errs, sg.close(), l.s.fs.Remove(sg.path))
		}
		errs = append(errs, syncDir(l.s.fs, l.dir))
		if err := errors.Join(errs...); err != nil {
			// The index no longer points at these files; recovery removes
			// any left behind.
			return nil, l.errorf("advance start: remove segments", err)
		}
		var dirty []*segment
		for _, d := range l.dirty {
			if !d.closed {
				dirty = append(dirty, d)
			}
		}
		l.dirty = dirty
	}
	return l.Checkpoint(), nil
}

// syncSegment syncs a segment now when the policy asks for durability.
func (l *partitionLog) syncSegment(sg *segment) error {
	if l.s.opts.Sync != SyncAlways {
		return nil
	}
	if err := sg.syncData(); err != nil {
		l.fail(err)
		return err
	}
	return nil
}

func (l *partitionLog) Close() error {
	if l.closed.Swap(true) {
		return l.errorf("close", ErrClosed)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, sg := range l.segs {
		if l.s.opts.Sync == SyncAlways && l.failure() == nil {
			if err := sg.syncData(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, sg.close())
	}
	l.s.forget(l)
	if err := errors.Join(errs...); err != nil {
		return l.errorf("close", err)
	}
	return nil
}
