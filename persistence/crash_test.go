package persistence

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

// crash returns a clone of fs holding only synced data, after closing s.
func crash(t tb, fs *vfs.MemFS, s *Store) *vfs.MemFS {
	t.Helper()
	c := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close() // the old store's later writes must not matter
	return c
}

func TestCrashKeepsSynced(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, 8192)
	l := mustOpenPartition(t, s, tp0)
	var acked [][]byte
	for i := 0; i < 30; i++ {
		b := makeBatch(t, 2, 300, int64(i), fmt.Sprint("c", i))
		appendOne(t, l, b, 0)
		acked = append(acked, append([]byte(nil), b...))
	}
	syncWait(t, l)
	for i := 0; i < 5; i++ { // never synced
		appendOne(t, l, makeBatch(t, 2, 300, 100, "lost"), 0)
	}
	fs = crash(t, fs, s)
	s = openMem(t, fs, 8192)
	defer s.Close()
	l = mustOpenPartition(t, s, tp0)
	if l.LogEnd() < 60 {
		t.Fatalf("log end %d below acknowledged 60", l.LogEnd())
	}
	got := readAll(t, l, 0)
	for i := range acked {
		if !bytes.Equal(got[i], acked[i]) {
			t.Fatalf("acked batch %d differs after crash", i)
		}
	}
	// Appends continue at the log end.
	if ev := appendOne(t, l, makeBatch(t, 1, 10, 5, "after"), 1); ev.BaseOffset != l.LogEnd()-1 {
		t.Fatalf("append after crash at %d", ev.BaseOffset)
	}
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		junk func(full []byte) []byte
	}{
		{"garbage", func([]byte) []byte { return bytes.Repeat([]byte{0xab}, 1000) }},
		{"half batch", func(full []byte) []byte { return full[:len(full)/2] }},
		{"bad crc", func(full []byte) []byte { c := append([]byte(nil), full...); c[len(c)-1] ^= 1; return c }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openMem(t, fs, 0)
			l := mustOpenPartition(t, s, tp0)
			for i := 0; i < 5; i++ {
				appendOne(t, l, makeBatch(t, 2, 100, int64(i), "ok"), 0)
			}
			syncWait(t, l)
			size := l.Size()
			s.Close()
			// Write the junk straight into the segment, as a crash mid-write
			// could leave it.
			next := makeBatch(t, 2, 100, 9, "torn")
			recordbatch.SetBaseOffset(next, 10)
			f, err := fs.OpenReadWrite("/data/log/t-0/"+segmentName(0), vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tc.junk(next), size); err != nil {
				t.Fatal(err)
			}
			f.Close()
			s = openMem(t, fs, 0)
			defer s.Close()
			l = mustOpenPartition(t, s, tp0)
			if l.LogEnd() != 10 || l.Size() != size {
				t.Fatalf("after torn tail: end %d size %d (want 10, %d)", l.LogEnd(), l.Size(), size)
			}
			ev := appendOne(t, l, makeBatch(t, 3, 10, 50, "new"), 0)
			if ev.BaseOffset != 10 || ev.Position != size {
				t.Fatalf("append after cut: %+v", ev)
			}
			if n := len(readAll(t, l, 0)); n != 6 {
				t.Fatalf("%d batches", n)
			}
		})
	}
}

func TestPebbleAheadOfSegment(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, 0)
	l := mustOpenPartition(t, s, tp0)
	for i := 0; i < 4; i++ {
		appendOne(t, l, makeBatch(t, 2, 100, int64(i*10), "ok"), 0)
	}
	syncWait(t, l)
	for i := 0; i < 3; i++ {
		appendOne(t, l, makeBatch(t, 2, 100, int64(100+i), "gone"), 1)
	}
	// A synced Pebble write (the journal's) makes the index durable past
	// the segment's synced data.
	if _, err := s.Journal().Append("x", NewCheckpoint()); err != nil {
		t.Fatal(err)
	}
	fs = crash(t, fs, s)
	s = openMem(t, fs, 0)
	defer s.Close()
	l = mustOpenPartition(t, s, tp0)
	if l.LogEnd() != 8 {
		t.Fatalf("log end %d, want 8", l.LogEnd())
	}
	cp := l.Checkpoint()
	if cp.LogEndOffset != 8 || cp.MaxTimestamp != 31 || len(cp.Epochs) != 1 {
		t.Fatalf("checkpoint not rebuilt: %v", cp)
	}
	if _, err := l.FindBatch(8); err == nil {
		t.Fatal("dropped event still found")
	}
	if _, _, err := l.OffsetForTimestamp(100); err == nil {
		t.Fatal("dropped timestamp still indexed")
	}
	if ev := appendOne(t, l, makeBatch(t, 1, 10, 5, "next"), 2); ev.BaseOffset != 8 {
		t.Fatalf("next append at %d", ev.BaseOffset)
	}
	if n := len(readAll(t, l, 0)); n != 5 {
		t.Fatalf("%d batches", n)
	}
}

// TestRapidLog checks the log against a model under random appends, syncs,
// crashes, truncations and retention: no acknowledged batch is lost, offsets
// stay dense, nothing truncated comes back, no offset is reused.
func TestRapidLog(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fs := vfs.NewCrashableMem()
		s := openMem(rt, fs, 2048)
		defer func() { s.Close() }()
		l := mustOpenPartition(rt, s, tp0)
		type mb struct {
			base  int64
			bytes []byte
			acked bool
		}
		var model []mb // batches from the log start, dense
		start := int64(0)
		serial := 0
		check := func() {
			end := start
			if len(model) > 0 {
				end = model[len(model)-1].base + int64(len(mustSplit(rt, model[len(model)-1].bytes)))
			}
			if l.LogStart() != start || l.LogEnd() != end {
				rt.Fatalf("log [%d,%d), model [%d,%d)", l.LogStart(), l.LogEnd(), start, end)
			}
			got := readAll(rt, l, start)
			if len(got) != len(model) {
				rt.Fatalf("%d batches, model %d", len(got), len(model))
			}
			for i := range got {
				if !bytes.Equal(got[i], model[i].bytes) {
					rt.Fatalf("batch %d (offset %d) differs", i, model[i].base)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(rt, "records")
				serial++
				b := makeBatch(rt, n, rapid.IntRange(10, 700).Draw(rt, "size"), int64(serial), fmt.Sprint("v", serial))
				ev := appendOne(rt, l, b, 0)
				model = append(model, mb{base: ev.BaseOffset, bytes: append([]byte(nil), b...)})
			},
			"sync": func(rt *rapid.T) {
				syncWait(rt, l)
				for i := range model {
					model[i].acked = true
				}
			},
			"crash": func(rt *rapid.T) {
				fs = crash(rt, fs, s)
				s = openMem(rt, fs, 2048)
				l = mustOpenPartition(rt, s, tp0)
				// Acked batches survive; unacked ones may or may not.
				var kept []mb
				for _, m := range model {
					if m.base >= l.LogEnd() {
						if m.acked {
							rt.Fatalf("acked batch at %d lost (log end %d)", m.base, l.LogEnd())
						}
						break
					}
					kept = append(kept, m)
				}
				model = kept
			},
			"truncate": func(rt *rapid.T) {
				if len(model) == 0 {
					return
				}
				i := rapid.IntRange(0, len(model)-1).Draw(rt, "batch")
				if _, err := l.Truncate(model[i].base); err != nil {
					rt.Fatal(err)
				}
				model = model[:i]
			},
			"advance": func(rt *rapid.T) {
				if len(model) == 0 {
					return
				}
				i := rapid.IntRange(0, len(model)).Draw(rt, "batch")
				off := l.LogEnd()
				if i < len(model) {
					off = model[i].base
				}
				if _, err := l.AdvanceStart(off); err != nil {
					rt.Fatal(err)
				}
				// AdvanceStart syncs its index write; earlier appends must
				// have been synced by the caller to count as acked.
				start = off
				model = model[i:]
			},
			"": func(*rapid.T) { check() },
		})
	})
}

func mustSplit(t tb, b []byte) []int {
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return make([]int, h.LastOffsetDelta+1)
}
