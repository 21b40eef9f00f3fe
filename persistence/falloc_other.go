//go:build !linux

package persistence

import "github.com/cockroachdb/pebble/v2/vfs"

func preallocate(f vfs.File, offset, length int64) error { return f.Preallocate(offset, length) }

func punchZero(f vfs.File, from, to int64) (bool, error) { return false, nil }
