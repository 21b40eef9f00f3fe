package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
)

// The test binary doubles as the fluxo binary: with FLUXO_TEST_MAIN=1 it runs
// main's run() on the arguments after "--", so black-box tests start real
// `fluxo serve` processes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("FLUXO_TEST_MAIN") == "1" {
		args := os.Args
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	// Brokers started by tests (in this process or as children) must not
	// take the default metrics port: other test runs may hold it.
	if _, ok := os.LookupEnv("FLUXO_METRICS_LISTEN"); !ok {
		os.Setenv("FLUXO_METRICS_LISTEN", "127.0.0.1:0")
	}
	os.Exit(m.Run())
}

// serverProc is a `fluxo serve` child process.
type serverProc struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	done    chan error
	started chan struct{} // closed at the start line
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startServe(t *testing.T, args ...string) *serverProc {
	t.Helper()
	p := spawnServe(t, nil, args...)
	p.waitStarted(t)
	return p
}

// spawnServe starts `fluxo serve` without waiting for it to start (cluster
// members wait for each other: start them all, then waitStarted). env is
// added to this process's environment.
func spawnServe(t *testing.T, env []string, args ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--", "serve"}, args...)...)
	cmd.Env = append(append(os.Environ(), "FLUXO_TEST_MAIN=1"), env...)
	p := &serverProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1), started: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if strings.Contains(line, "fluxo broker started") {
				once.Do(func() { close(p.started) })
			}
		}
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.done <- err }()
	t.Cleanup(func() { p.kill() })
	return p
}

// waitStarted waits for the start line (or the process's exit).
func (p *serverProc) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-p.started:
	case err := <-p.done:
		p.done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("fluxo serve did not start in 60s:\n%s", p.stderr)
	}
}

func (p *serverProc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// wait returns the exit code, failing the test after a bound.
func (p *serverProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("fluxo serve did not exit:\n%s", p.stderr)
		return -1
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type acked struct {
	partition int32
	offset    int64
	value     string
}

// TestServeSurvivesSIGKILL produces through the remote client while the
// broker is killed with SIGKILL, restarts it, and checks that every
// acknowledged record is there at its acknowledged offset.
func TestServeSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	srv := startServe(t, "--data-dir", dir, "--remote-listen", addr, "--listen", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := fluxo.Dial(ctx, addr, fluxo.ClientTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, "durable", 2); err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		acks []acked
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := int32(w % 2)
				v := fmt.Sprintf("w%d-%d", w, i)
				off, err := c.Produce(ctx, "durable", p, fluxo.Record{Value: []byte(v)})
				if err != nil {
					continue // unknown outcome: not acknowledged
				}
				mu.Lock()
				acks = append(acks, acked{p, off, v})
				mu.Unlock()
			}
		}(w)
	}
	// Let some writes be acknowledged, then kill the broker mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	close(stop)
	wg.Wait()
	c.Close()
	if len(acks) < 200 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acks))
	}

	startServe(t, "--data-dir", dir, "--remote-listen", addr, "--listen", "127.0.0.1:0")
	c2, err := fluxo.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got := map[int32]map[int64]string{}
	for p := int32(0); p < 2; p++ {
		got[p] = map[int64]string{}
		for off := int64(0); ; {
			res, err := c2.Fetch(ctx, "durable", p, off)
			if err != nil {
				t.Fatalf("fetch %d@%d: %v", p, off, err)
			}
			for _, r := range res.Records {
				got[p][r.Offset] = string(r.Value)
				off = r.Offset + 1
			}
			if off >= res.HighWatermark || len(res.Records) == 0 {
				break
			}
		}
	}
	for _, a := range acks {
		if v, ok := got[a.partition][a.offset]; !ok || v != a.value {
			t.Fatalf("acknowledged %q at %d/%d; after restart found %q (present %v)", a.value, a.partition, a.offset, v, ok)
		}
	}
	t.Logf("%d acknowledged writes, all present after SIGKILL and restart", len(acks))
}

func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, "--data-dir", dir, "--remote-listen", freePort(t), "--listen", "127.0.0.1:0")
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, srv.stderr)
	}
	if !strings.Contains(srv.stderr.String(), "stopped cleanly") {
		t.Fatalf("no clean stop logged:\n%s", srv.stderr)
	}
}

func TestServeRejectsBadSetup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"data dir is a file", []string{"--data-dir", file}, "--data-dir"},
		{"remote port taken", []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--remote-listen", taken.Addr().String()}, "address already in use"},
		{"kafka port taken", []string{"--data-dir", t.TempDir(), "--remote-listen", "127.0.0.1:0", "--listen", taken.Addr().String()}, "address already in use"},
		{"bad sync", []string{"--data-dir", t.TempDir(), "--sync", "sometimes"}, "--sync"},
		{"bad listen", []string{"--data-dir", t.TempDir(), "--listen", "nonsense"}, "--listen"},
		{"bad partitions", []string{"--data-dir", t.TempDir(), "--default-partitions", "0"}, "--default-partitions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(append([]string{"serve"}, tc.args...), io.Discard, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want non-zero and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// TestServeKafkaSurvivesSIGKILL produces through the Kafka gateway with
// franz-go (idempotent, acks=all) while the broker is killed with SIGKILL,
// restarts it, and reads every acknowledged record back at its offset.
func TestServeKafkaSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	kafka := freePort(t)
	srv := startServe(t, "--data-dir", dir, "--listen", kafka, "--remote-listen", "", "--default-partitions", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.DefaultProduceTopic("killed"), kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(3*time.Second), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		acks []acked
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("r%d", i)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acks = append(acks, acked{r.Partition, r.Offset, string(r.Value)})
					mu.Unlock()
				}
			})
			if i%64 == 63 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.cmd.Process.Signal(syscall.SIGKILL)
	srv.wait(t)
	close(stop)
	<-done
	cl.Close() // fails what is still buffered: those were never acknowledged
	mu.Lock()
	snapshot := append([]acked(nil), acks...)
	mu.Unlock()
	if len(snapshot) < 2000 {
		t.Fatalf("only %d records acknowledged before the kill", len(snapshot))
	}

	startServe(t, "--data-dir", dir, "--listen", kafka, "--remote-listen", "")
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics("killed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	want := map[int32]map[int64]string{}
	for _, a := range snapshot {
		if want[a.partition] == nil {
			want[a.partition] = map[int64]string{}
		}
		want[a.partition][a.offset] = a.value
	}
	found := 0
	for found < len(snapshot) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("found %d of %d acknowledged records after restart", found, len(snapshot))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := want[r.Partition][r.Offset]; ok {
				if v != string(r.Value) {
					t.Fatalf("offset %d/%d holds %q, acknowledged %q", r.Partition, r.Offset, r.Value, v)
				}
				found++
			}
		})
	}
	t.Logf("%d records acknowledged through the Kafka gateway, all present after SIGKILL", len(snapshot))
}
