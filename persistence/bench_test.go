package persistence

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Benchmarks run on the real disk under b.TempDir(). The batch is 16
// records of 1 KiB (~16.6 KiB), as in architecture.md's measurements.

func benchBatch(b *testing.B) []byte { return makeBatch(b, 16, 1024, 1_700_000_000_000, "bench") }

func benchStore(b *testing.B, dir string, sync SyncPolicy) *Store {
	s, err := Open(Options{Dir: dir, Sync: sync, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name  string
		sync  SyncPolicy
		parts int
	}{{"fsync/p1", SyncAlways, 1}, {"fsync/p8", SyncAlways, 8}, {"nosync/p1", SyncNever, 1}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, b.TempDir(), c.sync)
			defer s.Close()
			batch := benchBatch(b)
			b.SetBytes(int64(len(batch)))
			logs := make([]Log, c.parts)
			for i := range logs {
				logs[i] = mustOpenPartition(b, s, PartitionID{"bench", int32(i)})
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for p, l := range logs {
				n := b.N / c.parts
				if p < b.N%c.parts {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					for i := 0; i < n; i++ {
						if _, err := appendBatch(l, batch, 0); err != nil {
							b.Error(err)
							return
						}
						if c.sync == SyncAlways {
							l.Sync(func(err error) { done <- err })
							if err := <-done; err != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func BenchmarkPlainFile(b *testing.B) {
	for _, c := range []struct {
		name  string
		sync  bool
		parts int
	}{{"fsync/p1", true, 1}, {"fsync/p8", true, 8}, {"nosync/p1", false, 1}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			batch := benchBatch(b)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := 0; p < c.parts; p++ {
				n := b.N / c.parts
				if p < b.N%c.parts {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					f, err := os.Create(filepath.Join(dir, string(rune('a'+p))))
					if err != nil {
						b.Error(err)
						return
					}
					defer f.Close()
					for i := 0; i < n; i++ {
						if _, err := f.Write(batch); err != nil {
							b.Error(err)
							return
						}
						if c.sync {
							if err := fdatasync(f); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// buildPartition writes about size bytes of batches to partition bench-0.
func buildPartition(b *testing.B, dir string, size int64) {
	s := benchStore(b, dir, SyncNever)
	l := mustOpenPartition(b, s, PartitionID{"bench", 0})
	batch := benchBatch(b)
	for l.Size() < size {
		if _, err := appendBatch(l, batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRead(b *testing.B) {
	const size = 256 << 20
	const chunk = 1 << 20
	b.Run("log", func(b *testing.B) {
		dir := b.TempDir()
		buildPartition(b, dir, size)
		s := benchStore(b, dir, SyncNever)
		defer s.Close()
		l := mustOpenPartition(b, s, PartitionID{"bench", 0})
		end := l.LogEnd()
		b.SetBytes(chunk)
		b.ResetTimer()
		off := int64(0)
		var total int64
		for i := 0; i < b.N; i++ {
			if off >= end {
				off = 0
			}
			p, err := l.Read(off, chunk, end)
			if err != nil {
				b.Fatal(err)
			}
			total += int64(len(p))
			off = lastOffsetOf(b, p) + 1
		}
		b.SetBytes(total / int64(b.N))
	})
	b.Run("plain", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "plain")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		batch := benchBatch(b)
		for n := 0; n < size; n += len(batch) {
			f.Write(batch)
		}
		b.SetBytes(chunk)
		buf := make([]byte, chunk)
		b.ResetTimer()
		pos := int64(0)
		for i := 0; i < b.N; i++ {
			p := make([]byte, chunk) // the log allocates its result too
			n, err := f.ReadAt(p, pos)
			if err == io.EOF || n == 0 {
				pos = 0
				continue
			}
			copy(buf, p[:n])
			pos += int64(n)
		}
		f.Close()
	})
}

func lastOffsetOf(b *testing.B, p []byte) int64 {
	var last int64
	for len(p) > 0 {
		h, err := parseHeaderForBench(p)
		if err != nil {
			b.Fatal(err)
		}
		last = h
		p = p[batchSize(p):]
	}
	return last
}

var (
	gibOnce sync.Once
	gibDir  string
)

func BenchmarkOpen1GiB(b *testing.B) {
	gibOnce.Do(func() {
		d, err := os.MkdirTemp("", "fluxo-bench-1gib-")
		if err != nil {
			b.Fatal(err)
		}
		gibDir = d
		buildPartition(b, gibDir, 1<<30)
	})
	benchOpen(b, gibDir, nil)
}

func BenchmarkOpenTornTail(b *testing.B) {
	dir := b.TempDir()
	buildPartition(b, dir, 256<<20)
	benchOpen(b, dir, func(s *Store, l Log) {
		// A torn batch: the first half of a batch after the last one.
		segs := l.Segments()
		act := segs[len(segs)-1]
		f, err := vfs.Default.OpenReadWrite(filepath.Join(dir, "log", "bench-0", segmentName(act.BaseOffset)), vfs.WriteCategoryUnspecified)
		if err != nil {
			b.Fatal(err)
		}
		batch := benchBatch(b)
		if _, err := f.WriteAt(batch[:len(batch)/2], act.Bytes); err != nil {
			b.Fatal(err)
		}
		f.Sync()
		f.Close()
	})
}

// benchOpen times OpenPartition; prep runs untimed before each open.
func benchOpen(b *testing.B, dir string, prep func(*Store, Log)) {
	s := benchStore(b, dir, SyncAlways)
	defer s.Close()
	id := PartitionID{"bench", 0}
	l := mustOpenPartition(b, s, id)
	b.SetBytes(l.Size())
	b.ReportMetric(float64(l.Size())/(1<<20), "MiB")
	end := l.LogEnd()
	l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if prep != nil {
			b.StopTimer()
			l := mustOpenPartition(b, s, id)
			prep(s, l)
			l.Close()
			b.StartTimer()
		}
		l := mustOpenPartition(b, s, id)
		if l.LogEnd() != end {
			b.Fatalf("log end %d, want %d", l.LogEnd(), end)
		}
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}
