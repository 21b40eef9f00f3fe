package testkit

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/fluxo-broker/fluxo"
)

// StartBroker starts an embedded broker on a fresh temporary directory, with
// quiet logs, and closes it when the test ends. Extra options go last, so
// they win.
func StartBroker(tb testing.TB, opts ...fluxo.Option) *fluxo.Broker {
	tb.Helper()
	return StartBrokerAt(tb, tb.TempDir(), opts...)
}

// StartBrokerAt starts an embedded broker on dir (to restart one on the same
// data) and closes it when the test ends, unless the test closed it first.
func StartBrokerAt(tb testing.TB, dir string, opts ...fluxo.Option) *fluxo.Broker {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]fluxo.Option{fluxo.WithDataDir(dir), fluxo.WithLogger(QuietLogger())}, opts...)
	b, err := fluxo.Start(ctx, all...)
	if err != nil {
		tb.Fatalf("testkit: start broker: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// QuietLogger drops everything below error; with FLUXO_TEST_LOG set (to
// debug, info, warn or error) it writes that level and up to stderr.
func QuietLogger() *slog.Logger {
	if lv := os.Getenv("FLUXO_TEST_LOG"); lv != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(lv)); err != nil {
			l = slog.LevelInfo
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// CrashFS is a file system that can simulate a machine crash: Crash returns a
// copy holding only what was synced, as a disk would after power loss.
type CrashFS struct {
	*vfs.MemFS
}

// NewCrashFS returns an empty crashable in-memory file system.
func NewCrashFS() *CrashFS { return &CrashFS{MemFS: vfs.NewCrashableMem()} }

// Crash returns the file system as it would be found after a crash now:
// everything not synced is gone. Keep using the result (it is crashable too)
// and abandon the old one along with whatever still has files open on it.
func (c *CrashFS) Crash() *CrashFS {
	return &CrashFS{MemFS: c.MemFS.CrashClone(vfs.CrashCloneCfg{})}
}
