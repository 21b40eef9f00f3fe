package persistence

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// makeBatch builds an uncompressed batch of n records of valueSize bytes
// with timestamps ts..ts+n-1; tag makes the values unique.
func makeBatch(t tb, n, valueSize int, ts int64, tag string) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{'x'}, valueSize)
		copy(v, fmt.Sprintf("%s/%d", tag, i))
		recs[i] = recordbatch.Record{Timestamp: ts + int64(i), Value: v}
	}
	b, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openMem(t tb, fs vfs.FS, segBytes int64) *Store {
	t.Helper()
	s, err := Open(Options{Dir: "/data", FS: fs, SegmentBytes: segBytes, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustOpenPartition(t tb, s *Store, id PartitionID) Log {
	t.Helper()
	l, err := s.OpenPartition(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendOne appends batch at the log end with cp advanced by ApplyBatch.
func appendOne(t tb, l Log, batch []byte, epoch int32) *fluxopb.BatchAppended {
	t.Helper()
	ev, err := appendBatch(l, batch, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func appendBatch(l Log, batch []byte, epoch int32) (*fluxopb.BatchAppended, error) {
	h, err := recordbatch.ParseHeader(batch)
	if err != nil {
		return nil, err
	}
	base := l.LogEnd()
	cp := ApplyBatch(l.Checkpoint(), &fluxopb.BatchAppended{
		BaseOffset: base, LastOffset: base + int64(h.LastOffsetDelta), LeaderEpoch: epoch,
		ProducerId: h.ProducerID, ProducerEpoch: int32(h.ProducerEpoch), BaseSequence: h.BaseSequence,
		LastSequence: h.LastSequence(), MaxTimestamp: h.MaxTimestamp,
	})
	return l.Append(batch, base, epoch, cp)
}

func syncWait(t tb, l Log) {
	t.Helper()
	ch := make(chan error, 1)
	l.Sync(func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
}

// readAll reads every batch from offset to the log end.
func readAll(t tb, l Log, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	for off := from; off < l.LogEnd(); {
		b, err := l.Read(off, 1<<20, l.LogEnd())
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		bs, err := recordbatch.Split(b)
		if err != nil || len(bs) == 0 {
			t.Fatalf("split at %d: %v (%d batches)", off, err, len(bs))
		}
		for _, x := range bs {
			h, _ := recordbatch.ParseHeader(x)
			if h.BaseOffset != off {
				t.Fatalf("batch at %d has base %d", off, h.BaseOffset)
			}
			off = h.LastOffset() + 1
			out = append(out, x)
		}
	}
	return out
}

// tb is what the helpers need; *testing.T, *testing.B and *rapid.T have it.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}
