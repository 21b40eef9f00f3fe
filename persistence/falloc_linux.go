//go:build linux

package persistence

import (
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// preallocate reserves length bytes from offset and, unlike vfs Preallocate
// (FALLOC_FL_KEEP_SIZE), extends the file size, so that fdatasync of later
// writes inside the range need not flush a size change.
func preallocate(f vfs.File, offset, length int64) error {
	if fd := f.Fd(); fd != vfs.InvalidFd {
		err := unix.Fallocate(int(fd), 0, offset, length)
		if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
			return err
		}
	}
	return f.Preallocate(offset, length)
}

// punchZero makes [from, to) read as zeros cheaply and keeps it allocated.
// It reports false when the file does not support it.
func punchZero(f vfs.File, from, to int64) (bool, error) {
	fd := f.Fd()
	if fd == vfs.InvalidFd || to <= from {
		return false, nil
	}
	err := unix.Fallocate(int(fd), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, to-from)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	return true, unix.Fallocate(int(fd), 0, from, to-from)
}
