package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is a node's storage: segment files plus one Pebble DB.
type Store struct {
	opts   Options
	fs     vfs.FS
	db     *pebble.DB
	logDir string
	log    *slog.Logger

	mu     sync.Mutex
	logs   map[PartitionID]*partitionLog
	closed bool

	journal *Journal

	// Group commit: each segment has a syncer (sync.go); cmu and cclosed
	// stop new syncs at Close, and syncs waits for those in flight.
	cmu     sync.Mutex
	cclosed bool
	syncs   sync.WaitGroup
	// segmentSyncs counts segment fdatasyncs (one per group-commit round
	// of a segment), for metrics.
	segmentSyncs atomic.Int64
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...interface{}) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...interface{}) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...interface{}) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("persistence: open: Options.Dir is required")
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 128 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fs := opts.FS
	if st, err := fs.Stat(opts.Dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("persistence: open %s: data dir is not a directory", opts.Dir)
	}
	logDir := fs.PathJoin(opts.Dir, "log")
	if err := fs.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("persistence: open %s: data dir unusable: %w", opts.Dir, err)
	}
	// Make the new directories durable: log/ in Dir, and every directory on
	// the way up, since MkdirAll may have created any of them.
	for dir := opts.Dir; ; {
		if err := syncDir(fs, dir); err != nil {
			return nil, fmt.Errorf("persistence: open %s: sync dir %s: %w", opts.Dir, dir, err)
		}
		parent := fs.PathDir(dir)
		if parent == dir || parent == "" || parent == "." {
			break
		}
		dir = parent
	}
	db, err := pebble.Open(fs.PathJoin(opts.Dir, "pebble"), &pebble.Options{
		FS:                          fs,
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0StopWritesThreshold:       1000,
		Logger:                      pebbleLogger{opts.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("persistence: open %s: pebble (is another process using this data dir?): %w", opts.Dir, err)
	}
	s := &Store{
		opts:   opts,
		fs:     fs,
		db:     db,
		logDir: logDir,
		log:    opts.Logger,
		logs:   make(map[PartitionID]*partitionLog),
	}
	s.journal = &Journal{s: s, last: make(map[string]uint64)}
	return s, nil
}

func (s *Store) writeOpts() *pebble.WriteOptions {
	if s.opts.Sync == SyncAlways {
		return pebble.Sync
	}
	return pebble.NoSync
}

func partitionDirName(id PartitionID) string {
	return id.Topic + "-" + strconv.FormatInt(int64(id.Partition), 10)
}

// OpenPartition opens the log of id, creating it if needed, and recovers its
// tail (see the package comment).
func (s *Store) OpenPartition(id PartitionID) (Log, error) {
	if id.Topic == "" || id.Partition < 0 || strings.ContainsAny(id.Topic, "/\\") {
		return nil, fmt.Errorf("persistence: open partition %s-%d: invalid partition id", id.Topic, id.Partition)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("persistence: open partition %s-%d: %w", id.Topic, id.Partition, ErrClosed)
	}
	if _, ok := s.logs[id]; ok {
		return nil, fmt.Errorf("persistence: open partition %s-%d: already open", id.Topic, id.Partition)
	}
	l, err := openLog(s, id)
	if err != nil {
		return nil, fmt.Errorf("persistence: open partition %s-%d: %w", id.Topic, id.Partition, err)
	}
	s.logs[id] = l
	return l, nil
}

func (s *Store) forget(l *partitionLog) {
	s.mu.Lock()
	if s.logs[l.id] == l {
		delete(s.logs, l.id)
	}
	s.mu.Unlock()
}

// DeletePartition closes the partition if open and removes its segments and
// its Pebble keys.
func (s *Store) DeletePartition(id PartitionID) error {
	wrap := func(err error) error {
		return fmt.Errorf("persistence: delete partition %s-%d: %w", id.Topic, id.Partition, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return wrap(ErrClosed)
	}
	l := s.logs[id]
	s.mu.Unlock()
	if l != nil {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			return wrap(err)
		}
	}
	// Files first: a crash in between leaves keys without segments, which
	// recovery drops; the reverse would resurrect the data from orphan files.
	if err := s.fs.RemoveAll(s.fs.PathJoin(s.logDir, partitionDirName(id))); err != nil {
		return wrap(err)
	}
	if err := syncDir(s.fs, s.logDir); err != nil {
		return wrap(err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, kind := range []byte{kindEvent, kindTime} {
		p := partitionPrefix(kind, id)
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return wrap(err)
		}
	}
	if err := b.Delete(stateKey(id), nil); err != nil {
		return wrap(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return wrap(err)
	}
	return nil
}

// Partitions lists the partitions that have a directory under log/.
func (s *Store) Partitions() ([]PartitionID, error) {
	names, err := s.fs.List(s.logDir)
	if err != nil {
		return nil, fmt.Errorf("persistence: list partitions: %w", err)
	}
	var out []PartitionID
	for _, n := range names {
		i := strings.LastIndexByte(n, '-')
		if i <= 0 {
			continue
		}
		p, err := strconv.ParseInt(n[i+1:], 10, 32)
		if err != nil || p < 0 {
			continue
		}
		if st, err := s.fs.Stat(s.fs.PathJoin(s.logDir, n)); err != nil || !st.IsDir() {
			continue
		}
		out = append(out, PartitionID{Topic: n[:i], Partition: int32(p)})
	}
	return out, nil
}

// Metrics returns Pebble's metrics (disk usage, compactions, WAL), or nil
// once the store is closed.
func (s *Store) Metrics() *pebble.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock() // Close marks closed under mu before closing Pebble
	if s.closed {
		return nil
	}
	return s.db.Metrics()
}

// SegmentSyncs counts the segment fdatasyncs since the store was opened.
func (s *Store) SegmentSyncs() int64 { return s.segmentSyncs.Load() }

// Journal returns the node's actor journal.
func (s *Store) Journal() *Journal { return s.journal }

// Close closes every open partition, waits for syncs in flight and closes
// Pebble.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	logs := make([]*partitionLog, 0, len(s.logs))
	for _, l := range s.logs {
		logs = append(logs, l)
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range logs {
		if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cmu.Lock()
	s.cclosed = true
	s.cmu.Unlock()
	s.syncs.Wait()
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persistence: close: %w", err)
	}
	return nil
}
