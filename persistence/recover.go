package persistence

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// openLog opens a partition's segments and recovers its tail:
//
//  1. load the checkpoint (state key) or start empty;
//  2. check the last event against its segment bytes; while it does not
//     match (Pebble's WAL reached disk, the segment did not), drop it, and
//     cut the checkpoint back to the last matching event;
//  3. otherwise apply events past the checkpoint's log end;
//  4. scan the segment past the last event, re-creating events for valid
//     batches with the expected base offset, and cut the tail at the first
//     torn or invalid one (zeroing the rest, deleting later segments);
//  5. sync the segments read, then commit the repaired index with a sync.
//
// Only the tail is read: cost is independent of the log's size, apart from a
// walk over the time index to find each sealed segment's max timestamp.
func openLog(s *Store, id PartitionID) (*partitionLog, error) {
	fs := s.fs
	dir := fs.PathJoin(s.logDir, partitionDirName(id))
	if _, err := fs.Stat(dir); err != nil {
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := syncDir(fs, s.logDir); err != nil {
			return nil, err
		}
	}
	l := &partitionLog{s: s, id: id, dir: dir, runMax: -1}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, n := range names {
		if b, ok := parseSegmentName(n); ok {
			bases = append(bases, b)
		}
	}
	slices.Sort(bases)
	closeAll := func() {
		for _, sg := range l.segs {
			sg.close()
		}
	}
	for _, b := range bases {
		path := fs.PathJoin(dir, segmentName(b))
		f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			closeAll()
			return nil, err
		}
		l.segs = append(l.segs, &segment{base: b, path: path, f: f, next: b, maxTS: -1})
	}
	if err := l.recover(); err != nil {
		closeAll()
		return nil, err
	}
	return l, nil
}

func (l *partitionLog) loadCheckpoint() (*fluxopb.PartitionCheckpoint, error) {
	v, closer, err := l.s.db.Get(stateKey(l.id))
	if err == pebble.ErrNotFound {
		return NewCheckpoint(), nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	cp := &fluxopb.PartitionCheckpoint{}
	if err := proto.Unmarshal(v, cp); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	return cp, nil
}

func fileSize(f vfs.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// matches reports whether ev's batch is intact in its segment.
func (l *partitionLog) matches(ev *fluxopb.BatchAppended) bool {
	sg := l.segmentFor(ev.SegmentBase)
	if sg == nil {
		return false
	}
	size, err := fileSize(sg.f)
	if err != nil {
		return false
	}
	_, h, ok := readBatchAt(sg.f, ev.Position, size, ev.BaseOffset)
	return ok && int32(h.Size()) == ev.Size && h.LastOffset() == ev.LastOffset
}

func (l *partitionLog) recover() error {
	db := l.s.db
	cp, err := l.loadCheckpoint()
	if err != nil {
		return err
	}
	fs := l.s.fs
	removed := false
	// Segments wholly below the log start are left-overs of an interrupted
	// AdvanceStart.
	for len(l.segs) > 1 && l.segs[1].base <= cp.LogStartOffset {
		l.segs[0].close()
		if err := fs.Remove(l.segs[0].path); err != nil {
			return err
		}
		l.segs = l.segs[1:]
		removed = true
	}

	b := db.NewBatch()
	defer b.Close()
	dirtyIndex := false

	// 2. The last event must match its segment.
	ep := partitionPrefix(kindEvent, l.id)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: ep, UpperBound: prefixEnd(ep)})
	if err != nil {
		return err
	}
	var last *fluxopb.BatchAppended
	dropped := 0
	for ok := it.Last(); ok; ok = it.Prev() {
		ev := &fluxopb.BatchAppended{}
		if err := proto.Unmarshal(it.Value(), ev); err != nil {
			it.Close()
			return fmt.Errorf("decode event: %w", err)
		}
		if l.matches(ev) {
			last = ev
			break
		}
		dropped++
	}
	if err := it.Close(); err != nil {
		return err
	}

	// Where the scan starts.
	segIdx, pos, want := 0, int64(0), cp.LogStartOffset
	if last != nil {
		segIdx = sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= last.SegmentBase })
		pos, want = last.Position+int64(last.Size), last.LastOffset+1
	} else if len(l.segs) > 0 {
		want = l.segs[0].base
	}

	if dropped > 0 {
		l.s.log.Warn("persistence: index ahead of segments; dropping events", "topic", l.id.Topic, "partition", l.id.Partition, "dropped", dropped, "end", want)
		maxTS, err := l.cutIndex(b, want)
		if err != nil {
			return err
		}
		cp = truncatedCheckpoint(cp, want, maxTS)
		if cp.LogStartOffset > want {
			cp.LogStartOffset = want
		}
		dirtyIndex = true
	} else if last != nil && last.LastOffset+1 > cp.LogEndOffset {
		// 3. Events past the checkpoint.
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: eventKey(l.id, cp.LogEndOffset), UpperBound: prefixEnd(ep)})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			ev := &fluxopb.BatchAppended{}
			if err := proto.Unmarshal(it.Value(), ev); err != nil {
				it.Close()
				return fmt.Errorf("decode event: %w", err)
			}
			if ev.BaseOffset >= cp.LogEndOffset {
				cp = ApplyBatch(cp, ev)
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
		dirtyIndex = true
	}

	// The running max timestamp of the index.
	tp := partitionPrefix(kindTime, l.id)
	runMax := int64(-1)
	{
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: tp, UpperBound: prefixEnd(tp)})
		if err != nil {
			return err
		}
		if it.Last() && dropped == 0 {
			runMax, _ = decodeTimeKey(it.Key())
		}
		if err := it.Close(); err != nil {
			return err
		}
		if dropped > 0 {
			runMax = cp.MaxTimestamp
		}
	}

	// 4. Scan the tail.
	recovered := 0
	var touched []*segment
	if len(l.segs) > 0 {
		sg := l.segs[segIdx]
		size, err := fileSize(sg.f)
		if err != nil {
			return err
		}
		touched = append(touched, sg)
		for {
			batch, h, ok := readBatchAt(sg.f, pos, size, want)
			if !ok {
				if segIdx+1 < len(l.segs) && l.segs[segIdx+1].base == want {
					segIdx++
					sg, pos = l.segs[segIdx], 0
					if size, err = fileSize(sg.f); err != nil {
						return err
					}
					touched = append(touched, sg)
					continue
				}
				break
			}
			ev := eventFromHeader(h, sg.base, pos)
			if err := l.indexBatch(b, ev, &runMax); err != nil {
				return err
			}
			cp = ApplyBatch(cp, ev)
			recovered++
			pos += int64(len(batch))
			want = ev.LastOffset + 1
		}
		// Cut here: zero what follows, drop later segments.
		sg = l.segs[segIdx]
		var hdr [64]byte
		n, _ := sg.f.ReadAt(hdr[:], pos)
		if !isZero(hdr[:n]) || dropped > 0 {
			l.s.log.Warn("persistence: torn segment tail cut", "topic", l.id.Topic, "partition", l.id.Partition, "segment", sg.base, "position", pos, "offset", want)
		}
		if err := zeroTail(sg.f, pos); err != nil {
			return err
		}
		for _, later := range l.segs[segIdx+1:] {
			later.close()
			if err := fs.Remove(later.path); err != nil {
				return err
			}
			removed = true
		}
		l.segs = l.segs[:segIdx+1]
		sg.size.Store(pos)
		sg.next = want
	} else if want < cp.LogEndOffset {
		// No segment at all: nothing survives past the log start.
		maxTS, err := l.cutIndex(b, want)
		if err != nil {
			return err
		}
		cp = truncatedCheckpoint(cp, want, maxTS)
		dirtyIndex = true
	}
	if want < cp.LogStartOffset {
		// The log start was recorded durably but the data up to it was not:
		// the log is empty at its start. Start a fresh segment there.
		l.s.log.Warn("persistence: segments end below the log start; restarting empty", "topic", l.id.Topic, "partition", l.id.Partition, "end", want, "start", cp.LogStartOffset)
		for _, sg := range l.segs {
			sg.close()
			if err := fs.Remove(sg.path); err != nil {
				return err
			}
		}
		l.segs, touched = nil, nil
		sg, err := createSegment(fs, l.dir, cp.LogStartOffset, l.s.opts.SegmentBytes)
		if err != nil {
			return err
		}
		l.segs = []*segment{sg}
		for _, kind := range []byte{kindEvent, kindTime} {
			p := partitionPrefix(kind, l.id)
			if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
				return err
			}
		}
		want, runMax, removed, dirtyIndex = cp.LogStartOffset, -1, true, true
		cp = truncatedCheckpoint(cp, want, -1)
	}
	if recovered > 0 {
		l.s.log.Info("persistence: recovered batches from segment tail", "topic", l.id.Topic, "partition", l.id.Partition, "batches", recovered, "end", want)
		dirtyIndex = true
	}
	if cp.LogEndOffset != want {
		cp.LogEndOffset = want
		dirtyIndex = true
	}
	if cp.LogStartOffset > want {
		cp.LogStartOffset = want
		dirtyIndex = true
	}
	if cp.MaxTimestamp < runMax {
		cp.MaxTimestamp = runMax
	}

	// 5. Make what was recovered durable: segments, then the index.
	for _, sg := range touched {
		if err := sg.f.SyncData(); err != nil {
			return err
		}
	}
	if removed {
		if err := syncDir(fs, l.dir); err != nil {
			return err
		}
	}
	if dirtyIndex {
		v, err := proto.Marshal(cp)
		if err != nil {
			return err
		}
		if err := b.Set(stateKey(l.id), v, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}

	// Sealed segments: size and next offset from their last event, max
	// timestamp from the time index (walked backwards once).
	if err := l.describeSealed(); err != nil {
		return err
	}
	if a := l.active(); a != nil {
		a.maxTS = runMax
	}
	l.runMax = runMax
	l.cp.Store(cp)
	l.logStart.Store(cp.LogStartOffset)
	l.logEnd.Store(want)
	return nil
}

func (l *partitionLog) describeSealed() error {
	n := len(l.segs) - 1
	if n <= 0 {
		return nil
	}
	db := l.s.db
	ep := partitionPrefix(kindEvent, l.id)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: ep, UpperBound: prefixEnd(ep)})
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		sg := l.segs[i]
		if it.SeekLT(eventKey(l.id, l.segs[i+1].base)) && offsetOfEventKey(it.Key()) >= sg.base {
			ev := &fluxopb.BatchAppended{}
			if err := proto.Unmarshal(it.Value(), ev); err != nil {
				it.Close()
				return err
			}
			sg.size.Store(ev.Position + int64(ev.Size))
			sg.next = ev.LastOffset + 1
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	tp := partitionPrefix(kindTime, l.id)
	tit, err := db.NewIter(&pebble.IterOptions{LowerBound: tp, UpperBound: prefixEnd(tp)})
	if err != nil {
		return err
	}
	ok := tit.Last()
	for i := n - 1; i >= 0; i-- {
		sg := l.segs[i]
		for ok {
			if _, base := decodeTimeKey(tit.Key()); base < sg.next {
				break
			}
			ok = tit.Prev()
		}
		if ok {
			sg.maxTS, _ = decodeTimeKey(tit.Key())
		}
	}
	return tit.Close()
}
