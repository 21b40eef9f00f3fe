package persistence

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

const segmentSuffix = ".seg"

// segment is one segment file. base is fixed; size, next and maxTS change
// under the owning log's lock (size is also read atomically by readers).
type segment struct {
	base int64
	path string
	f    vfs.File

	size  atomic.Int64 // bytes of valid batches: the write position
	next  int64        // one past the last offset held
	maxTS int64        // running max timestamp of the log at this segment's end

	mu     sync.Mutex // guards f against Close during a sync
	closed bool

	syncer syncer // group commit of this segment (sync.go)
}

func segmentName(base int64) string { return fmt.Sprintf("%020d%s", base, segmentSuffix) }

func parseSegmentName(name string) (int64, bool) {
	if !strings.HasSuffix(name, segmentSuffix) {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(name, segmentSuffix), 10, 64)
	return v, err == nil && v >= 0
}

// syncData fdatasyncs the segment unless it has been closed meanwhile.
func (s *segment) syncData() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.f.SyncData()
}

func (s *segment) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// createSegment creates and preallocates a segment file and makes its
// directory entry durable.
func createSegment(fs vfs.FS, dir string, base, prealloc int64) (*segment, error) {
	path := fs.PathJoin(dir, segmentName(base))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	if prealloc > 0 {
		if err := preallocate(f, 0, prealloc); err != nil {
			f.Close()
			return nil, fmt.Errorf("preallocate %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(fs, dir); err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, path: path, f: f, next: base, maxTS: -1}
	return s, nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// zeroTail makes the bytes of f from `from` to its end read as zeros, so a
// later scan cannot mistake stale bytes for batches.
func zeroTail(f vfs.File, from int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size()
	if end <= from {
		return nil
	}
	if ok, err := punchZero(f, from, end); ok || err != nil {
		return err
	}
	zeros := make([]byte, min(end-from, 1<<20))
	for off := from; off < end; {
		n := min(int64(len(zeros)), end-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// readBatchAt reads and checks the batch at pos whose base offset must be
// want. It returns the batch bytes and header, or ok=false when the bytes
// there are not such a batch (end of data, torn or stale).
func readBatchAt(f vfs.File, pos, fileSize, want int64) ([]byte, recordbatch.Header, bool) {
	var hdr [recordbatch.HeaderSize]byte
	if pos+recordbatch.HeaderSize > fileSize {
		return nil, recordbatch.Header{}, false
	}
	if _, err := f.ReadAt(hdr[:], pos); err != nil && err != io.EOF {
		return nil, recordbatch.Header{}, false
	}
	h, err := recordbatch.ParseHeader(hdr[:])
	if err != nil && err != recordbatch.ErrTruncated {
		return nil, h, false
	}
	if h.BaseOffset != want || h.Magic != 2 || int64(h.Size()) > fileSize-pos {
		return nil, h, false
	}
	b := make([]byte, h.Size())
	if n, err := f.ReadAt(b, pos); n != len(b) && err != nil {
		return nil, h, false
	}
	h, err = recordbatch.Validate(b)
	if err != nil || h.BaseOffset != want {
		return nil, h, false
	}
	return b, h, true
}

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
