package testkit

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SlowFS wraps a file system and delays every sync (Sync, SyncData,
// SyncTo) by a settable duration: a slow disk. Zero delay passes through.
type SlowFS struct {
	vfs.FS
	delay atomic.Int64 // nanoseconds
}

// NewSlowFS wraps fs with no delay.
func NewSlowFS(fs vfs.FS) *SlowFS { return &SlowFS{FS: fs} }

// SetSyncDelay makes every later sync wait d first.
func (s *SlowFS) SetSyncDelay(d time.Duration) { s.delay.Store(int64(d)) }

func (s *SlowFS) wait() {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
}

func (s *SlowFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return slowFile{File: f, fs: s}, nil
}

// Create wraps the created file.
func (s *SlowFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return s.wrap(s.FS.Create(name, c))
}

// Open wraps the opened file.
func (s *SlowFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return s.wrap(s.FS.Open(name, opts...))
}

// OpenReadWrite wraps the opened file.
func (s *SlowFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return s.wrap(s.FS.OpenReadWrite(name, c, opts...))
}

// OpenDir wraps the directory (its Sync is delayed too).
func (s *SlowFS) OpenDir(name string) (vfs.File, error) { return s.wrap(s.FS.OpenDir(name)) }

// ReuseForWrite wraps the reused file.
func (s *SlowFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return s.wrap(s.FS.ReuseForWrite(oldname, newname, c))
}

type slowFile struct {
	vfs.File
	fs *SlowFS
}

func (f slowFile) Sync() error { f.fs.wait(); return f.File.Sync() }

func (f slowFile) SyncData() error { f.fs.wait(); return f.File.SyncData() }

func (f slowFile) SyncTo(length int64) (bool, error) { f.fs.wait(); return f.File.SyncTo(length) }
