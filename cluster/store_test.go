package cluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(testCtx(t), Options{DataDir: dir, NodeID: 1})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenFileStorageSyncAlways(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	s := openStore(t, dir)
	t.Logf("Open took %s", time.Since(start))

	if cfg := s.srv.JetStreamConfig(); cfg == nil || !cfg.SyncAlways {
		t.Fatalf("JetStream config %+v: want SyncAlways", cfg)
	}
	if got := s.srv.JetStreamConfig().StoreDir; got != filepath.Join(dir, "nats", "jetstream") {
		t.Errorf("StoreDir = %q, want %q", got, filepath.Join(dir, "nats", "jetstream"))
	}
	if a := s.srv.Addr(); a != nil {
		t.Errorf("server listens for clients at %v; want DontListen", a)
	}
	ctx := testCtx(t)
	st, err := s.js.Stream(ctx, bucketStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.FileStorage {
		t.Errorf("bucket storage = %v, want file", info.Config.Storage)
	}
	if info.Config.Replicas != 1 || info.Config.MaxMsgsPerSubject != bucketHistory {
		t.Errorf("bucket replicas %d history %d", info.Config.Replicas, info.Config.MaxMsgsPerSubject)
	}
	// The stream's files live under <dataDir>/nats.
	var blk bool
	filepath.WalkDir(filepath.Join(dir, "nats"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, bucketStream) && strings.HasSuffix(p, ".blk") {
			blk = true
		}
		return nil
	})
	if !blk {
		t.Errorf("no .blk file for %s under %s", bucketStream, dir)
	}
}

func TestOpenRejectsUnusableDataDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Open(testCtx(t), Options{DataDir: f})
	if err == nil {
		s.Close()
		t.Fatal("Open on a regular file succeeded")
	}
	if !strings.Contains(err.Error(), "data dir unusable") {
		t.Errorf("error %q does not say the data dir is unusable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing Open took %s", d)
	}
}

func TestOpenRejectsReadOnlyStoreDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions: use a store path below a regular file.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "nats"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testCtx(t), Options{DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), "data dir unusable") {
			t.Fatalf("Open with <dataDir>/nats a file: err = %v", err)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "nats"), 0o500); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testCtx(t), Options{DataDir: dir, StartTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("Open on a read-only store dir succeeded")
	}
}

func TestOpenOptionsValidation(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Open(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("empty DataDir: err = %v", err)
	}
	_, err := Open(ctx, Options{DataDir: t.TempDir(), Peers: []string{"127.0.0.1:6222"}})
	if err == nil || !strings.Contains(err.Error(), "ClusterListen") {
		t.Errorf("Peers without ClusterListen: err = %v", err)
	}
}

func TestClosedStoreUnavailable(t *testing.T) {
	s, err := Open(testCtx(t), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t)
	if _, _, err := s.GetTopic(ctx, "a"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("GetTopic after Close: %v, want ErrUnavailable", err)
	}
	if err := s.CreateTopic(ctx, topic("a", 1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("CreateTopic after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.ListTopics(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ListTopics after Close: %v, want ErrUnavailable", err)
	}
}

func TestOpenReportsJetStreamFailure(t *testing.T) {
	// <dataDir>/nats is fine but JetStream cannot create its own directory:
	// the server reports a fatal error, which Open must return promptly.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nats"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats", "jetstream"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Open(testCtx(t), Options{DataDir: dir, StartTimeout: 5 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with an unusable JetStream dir")
	}
	t.Logf("error after %s: %v", time.Since(start), err)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing Open took %s", d)
	}
}

type lineCollector struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCollector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

func TestServerLogsToSlogAndWatchEndsOnClose(t *testing.T) {
	var c lineCollector
	lg := slog.New(slog.NewTextHandler(&c, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(testCtx(t), Options{DataDir: t.TempDir(), NodeID: 7, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.WatchTopics(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("unexpected event on an empty store")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed by Close")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	all := strings.Join(c.lines, "")
	if !strings.Contains(all, "component=nats") || !strings.Contains(all, "fluxo-7") {
		t.Fatalf("server log lines not routed to slog:\n%s", all)
	}
}
