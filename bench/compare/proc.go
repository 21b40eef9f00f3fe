package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fluxoBinary builds ./cmd/fluxo once into the run's directory (or uses
// -fluxo-bin).
func (h *harness) fluxoBinary(ctx context.Context) (string, error) {
	if h.bin != "" {
		return h.bin, nil
	}
	if h.o.fluxoBin != "" {
		h.bin = h.o.fluxoBin
		return h.bin, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(h.dir, "fluxo")
	h.logf("compare: go build -o %s ./cmd/fluxo", bin)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fluxo")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fluxo: %v\n%s", err, out)
	}
	h.logf("compare: built in %v", time.Since(start).Round(100*time.Millisecond))
	h.bin = bin
	return bin, nil
}

// moduleRoot is the directory of the fluxo module's go.mod, wherever the
// command runs from inside the module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the fluxo module: run from the repository (go run ./bench/compare)")
	}
	return filepath.Dir(gomod), nil
}

// child is one `fluxo serve` process.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time // just before the exec
	exited  chan struct{}
	waitErr error
}

// procs tracks the children still running, so every one is stopped at the
// end, on error and on interrupt.
type procs struct {
	mu   sync.Mutex
	live map[*child]struct{}
}

// startServe starts `fluxo serve args...` with its output in logPath.
func (h *harness) startServe(ctx context.Context, name, logPath string, args ...string) (*child, error) {
	bin, err := h.fluxoBinary(ctx)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A last resort should this process die without stopping its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	h.procs.mu.Lock()
	h.procs.live[c] = struct{}{}
	h.procs.mu.Unlock()
	go func() {
		c.waitErr = cmd.Wait()
		h.procs.mu.Lock()
		delete(h.procs.live, c)
		h.procs.mu.Unlock()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// running reports an error if the child has exited.
func (c *child) running() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s (pid %d) exited: %v; log %s:\n%s", c.name, c.pid(), c.waitErr, c.logPath, tail(c.logPath, 15))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after timeout); it
// returns how long the clean shutdown took.
func (c *child) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-c.exited:
		return 0, nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		took := time.Since(start)
		if c.waitErr != nil {
			return took, fmt.Errorf("%s (pid %d): %v after SIGTERM", c.name, c.pid(), c.waitErr)
		}
		return took, nil
	case <-time.After(timeout):
		c.kill()
		return time.Since(start), fmt.Errorf("%s (pid %d) did not stop within %v of SIGTERM: killed", c.name, c.pid(), timeout)
	}
}

// kill sends SIGKILL and waits for the exit.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// stopAll stops every child still running, by PID.
func (p *procs) stopAll(logf func(string, ...any)) {
	p.mu.Lock()
	var all []*child
	for c := range p.live {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		logf("compare: stopping %s (pid %d)", c.name, c.pid())
		if _, err := c.stop(30 * time.Second); err != nil {
			logf("compare: %v", err)
		}
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// portAllocator hands out loopback ports below the kernel's ephemeral range
// (32768), so no outgoing connection takes a child's port between the check
// and the child's bind; a port is free when it can be bound now.
type portAllocator struct {
	mu   sync.Mutex
	used map[int]bool
}

func (p *portAllocator) take(n int) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used == nil {
		p.used = map[int]bool{}
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			return nil, errors.New("no free loopback port in 20000-32767")
		}
		port := 20000 + rand.IntN(12768)
		if p.used[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		p.used[port] = true
		out = append(out, port)
	}
	return out, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// vmRSS reads a process's resident and peak resident memory (VmRSS, VmHWM)
// in bytes from /proc/PID/status.
func vmRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kib << 10
		case "VmHWM:":
			hwm = kib << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// dirBytes is the disk space allocated to the files under dir (not their
// apparent sizes: segments may be preallocated).
func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n
}
