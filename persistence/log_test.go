package persistence

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

var tp0 = PartitionID{Topic: "t", Partition: 0}

func TestAppendReadFind(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 0)
	defer s.Close()
	l := mustOpenPartition(t, s, tp0)
	var want [][]byte
	for i := 0; i < 10; i++ {
		b := makeBatch(t, 3, 100, int64(1000+i*10), "a")
		ev := appendOne(t, l, b, 2)
		if ev.BaseOffset != int64(i*3) || ev.LastOffset != int64(i*3+2) || ev.LeaderEpoch != 2 {
			t.Fatalf("event %d: %+v", i, ev)
		}
		want = append(want, b)
	}
	syncWait(t, l)
	if l.LogEnd() != 30 || l.LogStart() != 0 {
		t.Fatalf("log [%d,%d)", l.LogStart(), l.LogEnd())
	}
	got := readAll(t, l, 0)
	if len(got) != 10 {
		t.Fatalf("read %d batches", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
		h, err := recordbatch.Validate(got[i])
		if err != nil || h.PartitionLeaderEpoch != 2 {
			t.Fatalf("batch %d: %v epoch %d", i, err, h.PartitionLeaderEpoch)
		}
	}
	// Offset in the middle of a batch returns that whole batch.
	b, err := l.Read(4, 1, 30)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want[1]) {
		t.Fatal("read 4 with maxBytes 1 must return exactly batch 1")
	}
	// upTo excludes batches whose last offset >= upTo.
	b, _ = l.Read(0, 1<<20, 7)
	if bs, _ := recordbatch.Split(b); len(bs) != 2 {
		t.Fatalf("upTo 7: %d batches", len(bs))
	}
	// maxBytes limits to whole batches.
	b, _ = l.Read(0, 2*len(want[0])+10, 30)
	if bs, _ := recordbatch.Split(b); len(bs) != 2 {
		t.Fatalf("maxBytes: %d batches", len(bs))
	}
	if b, err := l.Read(30, 100, 30); err != nil || len(b) != 0 {
		t.Fatalf("read at end: %d bytes, %v", len(b), err)
	}
	if b, err := l.Read(6, 100, 6); err != nil || len(b) != 0 {
		t.Fatalf("read at upTo: %d bytes, %v", len(b), err)
	}
	if _, err := l.Read(31, 100, 40); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	ev, err := l.FindBatch(16)
	if err != nil || ev.BaseOffset != 15 || ev.LastOffset != 17 {
		t.Fatalf("find 16: %+v %v", ev, err)
	}
	if _, err := l.FindBatch(30); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("find 30: %v", err)
	}
	if cp := l.Checkpoint(); cp.LogEndOffset != 30 || len(cp.Epochs) != 1 || cp.MaxTimestamp != 1092 {
		t.Fatalf("checkpoint %v", cp)
	}
	if segs := l.Segments(); len(segs) != 1 || segs[0].NextOffset != 30 || segs[0].Bytes != l.Size() {
		t.Fatalf("segments %+v", segs)
	}
}

func TestCorruptBatchRejected(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 0)
	defer s.Close()
	l := mustOpenPartition(t, s, tp0)
	b := makeBatch(t, 2, 10, 1, "a")
	b[len(b)-1] ^= 0xff
	if _, err := l.Append(b, 0, 0, nil); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("corrupt batch: %v", err)
	}
	if _, err := l.Append(b[:30], 0, 0, nil); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("short batch: %v", err)
	}
	if l.LogEnd() != 0 {
		t.Fatal("log end moved")
	}
	good := makeBatch(t, 2, 10, 1, "a")
	if _, err := l.Append(good, 5, 0, nil); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("append at wrong offset: %v", err)
	}
	appendOne(t, l, good, 0)
}

func TestTimestampsIndex(t *testing.T) {
	s := openMem(t, vfs.NewMem(), 0)
	defer s.Close()
	l := mustOpenPartition(t, s, tp0)
	// max timestamps: 100, 50, 200, 150, 300 (each batch 1 record)
	for i, ts := range []int64{100, 50, 200, 150, 300} {
		appendOne(t, l, makeBatch(t, 1, 10, ts, "t"), 0)
		_ = i
	}
	cases := []struct{ ts, off, mts int64 }{{0, 0, 100}, {100, 0, 100}, {101, 2, 200}, {150, 2, 200}, {201, 4, 300}, {300, 4, 300}}
	for _, c := range cases {
		off, mts, err := l.OffsetForTimestamp(c.ts)
		if err != nil || off != c.off || mts != c.mts {
			t.Fatalf("ts %d: got %d,%d,%v want %d,%d", c.ts, off, mts, err, c.off, c.mts)
		}
	}
	if _, _, err := l.OffsetForTimestamp(301); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ts 301: %v", err)
	}
}

func TestRollTruncateAdvance(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 4096)
	defer s.Close()
	l := mustOpenPartition(t, s, tp0)
	var batches [][]byte
	for i := 0; i < 20; i++ { // ~1 KiB batches, ~3 per segment
		b := makeBatch(t, 2, 500, int64(i*10), "r")
		appendOne(t, l, b, int32(i/10))
		batches = append(batches, append([]byte(nil), b...))
	}
	syncWait(t, l)
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("expected rolls, got %d segments", len(segs))
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].BaseOffset != segs[i-1].NextOffset {
			t.Fatalf("segments not contiguous: %+v", segs)
		}
	}
	// Truncate in the middle of batch 15 (offsets 30,31): cut at 30.
	cp, err := l.Truncate(31)
	if err != nil {
		t.Fatal(err)
	}
	if l.LogEnd() != 30 || cp.LogEndOffset != 30 || cp.MaxTimestamp != 141 {
		t.Fatalf("after truncate end %d cp %v", l.LogEnd(), cp)
	}
	if n := len(readAll(t, l, 0)); n != 15 {
		t.Fatalf("after truncate %d batches", n)
	}
	if _, _, err := l.OffsetForTimestamp(145); !errors.Is(err, ErrNotFound) {
		t.Fatalf("truncated timestamp still indexed: %v", err)
	}
	// Epoch 1 started at 20 survives; append continues at 30.
	if len(cp.Epochs) != 2 || cp.Epochs[1].StartOffset != 20 {
		t.Fatalf("epochs %v", cp.Epochs)
	}
	nb := makeBatch(t, 2, 500, 1000, "new")
	if ev := appendOne(t, l, nb, 3); ev.BaseOffset != 30 {
		t.Fatalf("append after truncate at %d", ev.BaseOffset)
	}
	syncWait(t, l)
	// Advance start: whole segments below 13 go.
	before := l.Segments()
	cp, err = l.AdvanceStart(13)
	if err != nil {
		t.Fatal(err)
	}
	after := l.Segments()
	if cp.LogStartOffset != 13 || l.LogStart() != 13 || len(after) >= len(before) || after[0].BaseOffset > 13 {
		t.Fatalf("advance: cp %v before %+v after %+v", cp, before, after)
	}
	if _, err := l.Read(12, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if _, err := l.Read(13, 100, 100); err != nil {
		t.Fatalf("read at start: %v", err)
	}
	// Advance to the log end: the active segment rolls and everything goes.
	if _, err := l.AdvanceStart(l.LogEnd()); err != nil {
		t.Fatal(err)
	}
	if segs := l.Segments(); len(segs) != 1 || segs[0].Bytes != 0 || segs[0].BaseOffset != 32 || l.Size() != 0 {
		t.Fatalf("after full advance %+v", segs)
	}
	appendOne(t, l, makeBatch(t, 1, 10, 2000, "z"), 3)
	syncWait(t, l)
	// Reopen: state survives.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpenPartition(t, s, tp0)
	if l.LogStart() != 32 || l.LogEnd() != 33 {
		t.Fatalf("reopen [%d,%d)", l.LogStart(), l.LogEnd())
	}
	if off, _, err := l.OffsetForTimestamp(0); err != nil || off != 32 {
		t.Fatalf("ts after retention: %d %v", off, err)
	}
}

func TestPartitionsAndDelete(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, 0)
	defer s.Close()
	ids := []PartitionID{{"a-b", 0}, {"a-b", 1}, {"c", 7}}
	for _, id := range ids {
		l := mustOpenPartition(t, s, id)
		appendOne(t, l, makeBatch(t, 1, 10, 1, "p"), 0)
		syncWait(t, l)
	}
	got, err := s.Partitions()
	if err != nil || len(got) != 3 {
		t.Fatalf("partitions %v %v", got, err)
	}
	if err := s.DeletePartition(ids[0]); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Partitions()
	if len(got) != 2 {
		t.Fatalf("after delete %v", got)
	}
	l := mustOpenPartition(t, s, ids[0])
	if l.LogEnd() != 0 || l.Checkpoint().LogEndOffset != 0 {
		t.Fatalf("deleted partition came back with end %d", l.LogEnd())
	}
}

func TestOpenErrors(t *testing.T) {
	fs := vfs.NewMem()
	f, _ := fs.Create("/file", vfs.WriteCategoryUnspecified)
	f.Close()
	if _, err := Open(Options{Dir: "/file", FS: fs, Logger: quiet}); err == nil {
		t.Fatal("open on a file succeeded")
	}
	if _, err := Open(Options{FS: fs}); err == nil {
		t.Fatal("open without dir succeeded")
	}
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(Options{Dir: dir, Logger: quiet}); err == nil {
		t.Fatal("second open of a locked dir succeeded")
	}
}
